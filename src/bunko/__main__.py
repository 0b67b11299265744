from bunko.cli import main

main()
