"""The control plane: settings, database, services, API, git hosting, proxy."""
