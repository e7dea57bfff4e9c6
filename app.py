"""C-MCR Studio, the Gradio demo: `python app.py --help` (the UI is `studio.ui`, its service `studio.service`).

On Hugging Face Spaces this is the `app_file`; the weights come from the environment
(CMCR_SPACE_REPO, CMCR_SPACE_REVISION, CMCR_PROFILE).
"""

import sys

from cmcr.cli import run_reporting_errors
from studio.ui import main

if __name__ == "__main__":
    sys.exit(run_reporting_errors(main))
