"""Label Studio in one package: `client` (label-studio-sdk: the client, errors, the export,
users, the connection a command or page uses), `server` (the workspace's local server in its
own venv) and `webhook` (the receiver that writes deliveries to the review inbox)."""
