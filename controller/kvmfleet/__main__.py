from kvmfleet.cli import main

main()
