"""The HTTP API in the Hugging Face Hub's dialect (see shared/HUB_API.md)."""
