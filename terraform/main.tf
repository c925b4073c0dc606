# Two droplets in hot standby, blue and green, identical but for their side.
# The public reserved IP points at the active one, the standby reserved IP at
# the passive one. Neither is assigned here: at first boot keepalived's
# failover.sh lets the preferred side (blue) claim the public IP and the other
# the standby IP; afterwards keepalived (failover) and deploy/blue-green.sh
# (releases) move them through the API. Terraform assigning them would move
# them back at every apply.

locals {
  sides       = toset(["blue", "green"])
  droplet_tag = "${var.project_name}-app"

  # Every replica's workers each hold a pool; both sides run at once.
  db_connections_needed = 2 * var.app_replicas * var.app_workers * var.db_pool_size

  database_url = format(
    "postgres://%s:%s@%s:%d/%s",
    digitalocean_database_user.app.name,
    urlencode(digitalocean_database_user.app.password),
    digitalocean_database_cluster.main.private_host,
    digitalocean_database_cluster.main.port,
    digitalocean_database_db.app.name,
  )
}

resource "digitalocean_vpc" "main" {
  name     = "${var.project_name}-vpc"
  region   = var.region
  ip_range = var.vpc_ip_range
}

# The firewall and the database's trusted sources both select the droplets by this tag.
resource "digitalocean_tag" "app" {
  name = local.droplet_tag
}

resource "digitalocean_reserved_ip" "public" {
  region = var.region
}

resource "digitalocean_reserved_ip" "standby" {
  region = var.region
}

resource "digitalocean_droplet" "app" {
  for_each = local.sides

  name              = "${var.project_name}-${each.key}"
  region            = var.region
  size              = var.droplet_size
  image             = var.droplet_image
  vpc_uuid          = digitalocean_vpc.main.id
  ssh_keys          = var.ssh_key_fingerprints
  tags              = [digitalocean_tag.app.id, "${var.project_name}-${each.key}"]
  monitoring        = true
  ipv6              = true
  graceful_shutdown = true

  user_data = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
    side                  = each.key
    preferred             = each.key == "blue"
    droplet_tag           = local.droplet_tag
    public_ip             = digitalocean_reserved_ip.public.ip_address
    standby_ip            = digitalocean_reserved_ip.standby.ip_address
    git_repository_url    = var.git_repository_url
    git_ref               = var.git_ref
    app_image             = var.app_image
    app_image_tag         = var.app_image_tag
    app_replicas          = var.app_replicas
    app_workers           = var.app_workers
    db_pool_size          = var.db_pool_size
    secure_cookies        = var.secure_cookies
    database_url          = local.database_url
    database_name         = digitalocean_database_db.app.name
    database_user         = digitalocean_database_user.app.name
    db_ca_certificate     = data.digitalocean_database_ca.main.certificate
    postgres_version      = var.postgres_version
    minitwit_secret_key   = var.minitwit_secret_key
    simulator_username    = var.simulator_username
    simulator_password    = var.simulator_password
    failover_do_token     = var.failover_do_token
    registry_username     = var.registry_username
    registry_password     = var.registry_password
    backup_dest           = "s3://${digitalocean_spaces_bucket.backups.name}/postgres"
    backup_s3_endpoint    = "https://${var.region}.digitaloceanspaces.com"
    backup_access_key     = digitalocean_spaces_key.backups.access_key
    backup_secret_key     = digitalocean_spaces_key.backups.secret_key
    backup_retention_days = var.backup_retention_days
    backup_schedule       = var.backup_schedule
    # Only blue hands the database to the app user, once, at its first boot.
    db_admin_url = each.key == "blue" ? digitalocean_database_cluster.main.private_uri : ""
  })

  lifecycle {
    # A droplet is replaced on purpose, one side at a time
    # (terraform apply -replace='digitalocean_droplet.app["green"]'), never
    # because a setting changed: releases go through deploy/blue-green.sh.
    ignore_changes = [user_data, image]

    precondition {
      condition     = local.db_connections_needed <= var.db_connection_limit - 3
      error_message = "2 sides x app_replicas x app_workers x db_pool_size exceeds the database's connections (db_connection_limit, less 3 for backups and admin): lower them or pick a bigger db_size."
    }
  }
}
