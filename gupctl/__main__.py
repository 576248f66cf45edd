from gupctl.cli import main

main()
