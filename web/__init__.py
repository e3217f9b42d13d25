"""The web application: composition root, REST API, WebSocket hub, front end."""
