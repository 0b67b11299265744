"""Talk to any OpenAI-compatible chat API (Ollama, llama.cpp, LM Studio, vLLM, OpenAI).

The ``openai`` client is imported here only, when an answer is generated: it brings
streaming, retries and timeouts. Its errors become :class:`LLMError` with the fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bunko.errors import BunkoError

DEFAULT_TIMEOUT = 120.0
CONFIGURE_HINT = (
    "set BUNKO_LLM_URL and BUNKO_LLM_MODEL for a generated answer, e.g. with Ollama: "
    "BUNKO_LLM_URL=http://localhost:11434/v1 BUNKO_LLM_MODEL=qwen2.5:7b"
)


class LLMError(BunkoError):
    """The language model could not be reached or refused the request."""


@dataclass(frozen=True)
class LLMConfig:
    """Where the chat API is and which model to use (flag > BUNKO_LLM_* > none)."""

    url: str
    model: str
    api_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def resolve(
        cls,
        url: str | None = None,
        model: str | None = None,
        timeout: float | None = None,
    ) -> LLMConfig | None:
        """The configured LLM, or None when no URL is set (then `ask` is extractive).

        Raises:
            LLMError: a URL without a model, or a bad BUNKO_LLM_TIMEOUT.
        """
        env = os.environ
        url = url or env.get("BUNKO_LLM_URL") or None
        model = model or env.get("BUNKO_LLM_MODEL") or None
        if url is None:
            return None
        if model is None:
            raise LLMError(
                f"an LLM URL is set ({url}) but no model; pass --llm-model NAME or set "
                "BUNKO_LLM_MODEL (for Ollama, a name from `ollama list`)"
            )
        if timeout is None:
            raw = env.get("BUNKO_LLM_TIMEOUT")
            try:
                timeout = float(raw) if raw else DEFAULT_TIMEOUT
            except ValueError:
                raise LLMError(f"BUNKO_LLM_TIMEOUT must be seconds, got {raw!r}") from None
        if timeout <= 0:
            raise LLMError(f"the LLM timeout must be positive (got {timeout})")
        key = env.get("BUNKO_LLM_API_KEY") or env.get("OPENAI_API_KEY") or None
        return cls(url=url.rstrip("/"), model=model, api_key=key, timeout=timeout)


def chat(
    config: LLMConfig,
    messages: list[dict[str, str]],
    on_delta: Callable[[str], None] | None = None,
) -> str:
    """One chat completion; the whole text.

    With ``on_delta`` the reply is streamed and each piece passed on as it arrives;
    without, one plain (non-streamed) request is made.

    Raises:
        LLMError: unreachable endpoint, timeout, bad key, unknown model, server error.
    """
    parts: list[str] = []
    for piece in _pieces(config, messages, stream=on_delta is not None):
        parts.append(piece)
        if on_delta is not None:
            on_delta(piece)
    return "".join(parts)


def _pieces(config: LLMConfig, messages: list[dict[str, str]], stream: bool) -> Iterator[str]:
    import openai

    client = openai.OpenAI(
        base_url=config.url,
        api_key=config.api_key or "not-needed",  # local servers ignore it; the client wants one
        timeout=config.timeout,
        # No retries: a retry doubles the wait past the timeout the user set (3 s took 8.8 s).
        max_retries=0,
    )
    try:
        if not stream:
            reply = client.chat.completions.create(
                model=config.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=0,
            )
            if not reply.choices:
                raise LLMError(f"the LLM at {config.url} sent a reply with no answer in it")
            yield reply.choices[0].message.content or ""
            return
        chunks = client.chat.completions.create(
            model=config.model,
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            temperature=0,
        )
        for chunk in chunks:
            if not getattr(chunk, "choices", None):
                continue
            delta = chunk.choices[0].delta.content  # type: ignore[union-attr]
            if delta:
                yield delta
    except openai.APITimeoutError:
        raise LLMError(
            f"the LLM at {config.url} gave no reply within {config.timeout:g} s; raise "
            "BUNKO_LLM_TIMEOUT, use a smaller model, or check that the server is not busy"
        ) from None
    except openai.APIConnectionError:
        raise LLMError(
            f"cannot reach the LLM at {config.url}; start the server (for Ollama: "
            "`ollama serve`) or fix --llm-url/BUNKO_LLM_URL (it usually ends in /v1)"
        ) from None
    except openai.AuthenticationError:
        raise LLMError(
            f"the LLM at {config.url} rejected the API key (HTTP 401); set "
            "BUNKO_LLM_API_KEY (or OPENAI_API_KEY) to a valid key"
        ) from None
    except openai.NotFoundError:
        raise LLMError(
            f"the LLM at {config.url} has no model {config.model!r} or no chat API there "
            "(HTTP 404); check --llm-model/BUNKO_LLM_MODEL (Ollama: `ollama list`, "
            "`ollama pull NAME`) and that the URL ends in /v1"
        ) from None
    except openai.APIStatusError as exc:
        raise LLMError(
            f"the LLM at {config.url} answered HTTP {exc.status_code}: {_detail(exc)}; "
            "check the server's log, or try again"
        ) from None
    except openai.APIError as exc:
        raise LLMError(f"the LLM at {config.url} sent a reply bunko cannot read: {exc}") from None
    finally:
        client.close()


def _detail(exc: object) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return str(msg)[:200]
    return str(getattr(exc, "message", exc))[:200]
