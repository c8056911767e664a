"""digitnet's Gradio user interface: one module per tab, plus the drawing pad component."""
