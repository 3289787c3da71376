"""The HTTP API in the Hugging Face Hub's dialect, as huggingface_hub 2.4 calls it."""
