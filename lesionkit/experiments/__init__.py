"""One module per notebook: its config class and the steps its cells call (the notebook tells the story)."""
