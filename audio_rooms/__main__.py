from audio_rooms.cli import main

raise SystemExit(main())
