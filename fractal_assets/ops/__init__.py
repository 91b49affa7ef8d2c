"""Operations: health and status, backups and restores, Redis snapshots."""
