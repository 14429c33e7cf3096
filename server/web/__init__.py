"""The HTML pages the server serves: the landing page, the browser apps and the API docs."""
