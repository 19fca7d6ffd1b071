from callvault.cli.main import main

main()
