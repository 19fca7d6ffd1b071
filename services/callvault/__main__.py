from callvault.cli.main import main

if __name__ == "__main__":  # not when a replay's worker process imports it (multiprocessing, spawn)
    main()
