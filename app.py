"""C-MCR Studio, the Gradio demo: `python app.py --help` (the UI is `studio.ui`, its service `studio.service`).

On Hugging Face Spaces this is the `app_file`; the weights come from the environment
(CMCR_SPACE_REPO, CMCR_SPACE_REVISION, CMCR_PROFILE), the address from GRADIO_SERVER_NAME and
GRADIO_SERVER_PORT. The models load when this module is imported, as ZeroGPU needs (it moves
what was loaded here onto each GPU it lends), and `demo` is the module-level app that
`gradio app.py` (reload mode) looks for. Tests import `studio.ui`, never this module.
"""

import spaces  # noqa: F401 - first, as ZeroGPU's documentation shows: before anything touches CUDA

import sys

from cmcr.cli import report_error
from cmcr.errors import CMCRError
from studio import ui

ARGS = ui.parse_args(sys.argv[1:] if __name__ == "__main__" else [])
try:
    PAGE = ui.load_page(ARGS)
except CMCRError as error:
    sys.exit(report_error(error))
demo = PAGE.demo

if __name__ == "__main__":
    PAGE.launch(ARGS.host, ARGS.port)
