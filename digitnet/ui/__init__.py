"""The app's tabs: one module per tab (components + handlers); the only place that imports gradio."""
