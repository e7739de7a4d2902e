from niso_geom.cli import main
raise SystemExit(main())
