"""`bunko ask`: a generated answer from the retrieved passages, with checked citations.

``prompt`` numbers the passages [1]..[k] as ``bunko query`` shows them, ``llm`` talks to
any OpenAI-compatible chat API through the ``openai`` client (imported only here),
``citations`` checks the markers and quotes of the answer, and ``ask`` ties them together.
"""
