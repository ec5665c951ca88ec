from cod_diffc.cli import main


raise SystemExit(main())
