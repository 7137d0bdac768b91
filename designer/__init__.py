"""The designer and web app: login, department inbox, scenario designer."""
