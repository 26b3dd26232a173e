#!/usr/bin/env bash
# Back up PostgreSQL (pg_dump, custom format) and the media folder (tar) into DIR.
# By default through the compose services (run from the repository root); DB_EXEC= and MEDIA_EXEC= empty
# run pg_dump and tar here instead (libpq's PGHOST etc. say where). docs/operations.md, "Backups".
set -euo pipefail
dir=${1:?usage: platform/backup.sh DIR}
db_exec=${DB_EXEC-docker compose exec -T postgres}
media_exec=${MEDIA_EXEC-docker compose exec -T web}
db=${POSTGRES_DB:-tagrank} user=${POSTGRES_USER:-tagrank} media=${MEDIA_ROOT:-/var/lib/tagrank/media}
mkdir -p "$dir"
# Written under a temporary name first: a failed run never leaves a file that looks like a backup.
$db_exec pg_dump --format=custom --no-owner --username "$user" "$db" > "$dir/tagrank.dump.partial"
$media_exec tar -C "$media" -cf - . > "$dir/media.tar.partial"
mv "$dir/tagrank.dump.partial" "$dir/tagrank.dump"
mv "$dir/media.tar.partial" "$dir/media.tar"
echo "backup: $(du -h "$dir/tagrank.dump" | cut -f1) database, $(du -h "$dir/media.tar" | cut -f1) media in $dir"
