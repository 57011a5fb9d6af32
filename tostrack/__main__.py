from tostrack.cli import main

main()
