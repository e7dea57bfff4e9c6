"""C-MCR Studio, the app: its service (`studio.service`: weights, galleries, answers) and its
Gradio UI (`studio.ui`). Outside the `cmcr` library, which never imports gradio."""
