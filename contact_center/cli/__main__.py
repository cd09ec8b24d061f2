"""`python -m contact_center.cli`: the `contact-center` command."""

import sys

from contact_center.cli.entry import main

sys.exit(main())
