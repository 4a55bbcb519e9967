from pryvrt.cli import main

main()
