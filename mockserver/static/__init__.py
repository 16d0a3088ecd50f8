"""The inspector page's static files (HTML, CSS, JavaScript): package data, no code."""
