#!/usr/bin/env bash
# docs/operations.md's backup and restore, tried: a small project with images and a judgment on
# PostgreSQL, platform/backup.sh, then platform/restore.sh into an empty database and media folder;
# every table's rows and every media file must come back identical.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} POSTGRES_USER=${POSTGRES_USER:-postgres}
src=${BACKUP_SRC_DB:-tagrank_backup_source} dst=${BACKUP_DST_DB:-tagrank_backup_restored}
work=$(mktemp -d)
trap 'dropdb -U "$POSTGRES_USER" --if-exists "$src"; dropdb -U "$POSTGRES_USER" --if-exists "$dst"; rm -rf "$work"' EXIT
for db in "$src" "$dst"; do dropdb -U "$POSTGRES_USER" --if-exists "$db"; createdb -U "$POSTGRES_USER" "$db"; done

export TAGRANK_VAR_DIR=$work/var DEBUG=true
DATABASE_URL=postgres://$POSTGRES_USER@$PGHOST:$PGPORT/$src MEDIA_ROOT=$work/media $PY manage.py migrate --noinput -v0
DATABASE_URL=postgres://$POSTGRES_USER@$PGHOST:$PGPORT/$src MEDIA_ROOT=$work/media $PY manage.py shell -c "
from django.contrib.auth.models import User
from labeling.models import Comparison, Membership, Project
from labeling.services.imports import store_image
from tests.conftest import make_image_bytes
project = Project.objects.create(name='Backup', slug='backup')
rater = User.objects.create_user('backup-rater', password='pw-backup-1')
Membership.objects.create(project=project, user=rater)
a, b = (store_image(project, f'{i}.png', make_image_bytes(seed=i), tags=['kept'])[0] for i in range(2))
Comparison.objects.create(project=project, image_a=a, image_b=b, outcome='a', rater=rater, client_key='k1')"

DB_EXEC= MEDIA_EXEC= POSTGRES_DB=$src MEDIA_ROOT=$work/media platform/backup.sh "$work/backup"
mkdir "$work/restored-media"
DB_EXEC= MEDIA_EXEC= POSTGRES_DB=$dst MEDIA_ROOT=$work/restored-media platform/restore.sh "$work/backup"

tables() {  # every table with its row count and a checksum of its rows
  psql -U "$POSTGRES_USER" -d "$1" -tAc "SELECT string_agg(format('SELECT %L, count(*), md5(coalesce(string_agg(t::text, ''|'' ORDER BY t::text), '''')) FROM %I t', tablename, tablename), ' UNION ALL ') FROM pg_tables WHERE schemaname = 'public'" \
    | psql -U "$POSTGRES_USER" -d "$1" -tA | sort
}
files() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
diff <(tables "$src") <(tables "$dst")
diff <(files "$work/media") <(files "$work/restored-media")
echo "backup round trip: $(tables "$dst" | wc -l) tables and $(files "$work/restored-media" | wc -l) media files identical; $(tables "$dst" | grep -E '^labeling_(image|comparison)\|' | tr '\n' ' ')"
