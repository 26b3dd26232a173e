#!/usr/bin/env bash
# Restore what platform/backup.sh wrote to DIR: the database (replacing its tables, in one transaction)
# and the media files. Stop web, workers and beat first. Same DB_EXEC / MEDIA_EXEC as backup.sh.
set -euo pipefail
dir=${1:?usage: platform/restore.sh DIR}
db_exec=${DB_EXEC-docker compose exec -T postgres}
media_exec=${MEDIA_EXEC-docker compose exec -T web}
db=${POSTGRES_DB:-tagrank} user=${POSTGRES_USER:-tagrank} media=${MEDIA_ROOT:-/var/lib/tagrank/media}
test -s "$dir/tagrank.dump" && test -s "$dir/media.tar"
$db_exec pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error \
  --username "$user" --dbname "$db" < "$dir/tagrank.dump"
$media_exec tar -C "$media" -xf - < "$dir/media.tar"
echo "restore: database $db and media $media from $dir"
