"""The dashboard: server-rendered pages for visitors, space owners and admins."""
