"""The domain: names, stages, configuration and releases. No I/O."""
