"""The dashboard: its history and push endpoints and its static page, served by the API app."""
