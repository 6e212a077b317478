"""Database migrations for webpipe apps: `webpipe migrate create|up|down|status|force`.

`core` holds the logic as plain functions (file scanning, the `_wp_migrations` table, one
transaction per migration); `cli` is the click group over them. Nothing here imports
asyncpg until a command connects (spec/migrate.md).
"""
