"""The Playground: a base model and its fine-tunes answering the same prompt side by side."""
