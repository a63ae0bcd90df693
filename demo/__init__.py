"""The studio's application layer: ``demo.model.Studio`` does the work, ``app.py`` wires it to Gradio."""
