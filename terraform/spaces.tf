# The bucket the database backups go to (deploy/backup/backup.sh, on a
# systemd timer on the active droplet). Private; objects expire a week after
# the retention backup.sh prunes to, in case the pruning ever stops.
resource "digitalocean_spaces_bucket" "backups" {
  name          = var.backup_bucket_name
  region        = var.region
  acl           = "private"
  force_destroy = false

  versioning {
    enabled = false
  }

  lifecycle_rule {
    id                                     = "expire-old-backups"
    enabled                                = true
    prefix                                 = "postgres/"
    abort_incomplete_multipart_upload_days = 1

    expiration {
      days = var.backup_retention_days + 7
    }
  }

  lifecycle {
    prevent_destroy = true
  }
}

# A key that can read and write this bucket and nothing else, for the droplets.
resource "digitalocean_spaces_key" "backups" {
  name = "${var.project_name}-backups"

  grant {
    bucket     = digitalocean_spaces_bucket.backups.name
    permission = "readwrite"
  }
}
