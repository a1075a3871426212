from rlhfdsl.cli.main import main

main()
