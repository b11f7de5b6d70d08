"""`python -m gateway`: the same command as the `gateway` console script."""

from gateway.cli import main

raise SystemExit(main())
