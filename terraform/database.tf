# Managed PostgreSQL in the droplets' VPC, with optional standby nodes.
# Trusted sources (the database firewall) admit the app droplets only, by
# their tag: no address, and so nothing on the internet, can connect.
resource "digitalocean_database_cluster" "main" {
  name                 = "${var.project_name}-pg"
  engine               = "pg"
  version              = var.postgres_version
  size                 = var.db_size
  region               = var.region
  node_count           = 1 + var.db_standby_nodes
  private_network_uuid = digitalocean_vpc.main.id
  tags                 = [var.project_name]

  maintenance_window {
    day  = "sunday"
    hour = "04:00"
  }

  lifecycle {
    prevent_destroy = true
  }
}

resource "digitalocean_database_firewall" "main" {
  cluster_id = digitalocean_database_cluster.main.id

  rule {
    type  = "tag"
    value = digitalocean_tag.app.name
  }
}

resource "digitalocean_database_db" "app" {
  cluster_id = digitalocean_database_cluster.main.id
  name       = "minitwit"
}

# The app's own user; blue's cloud-init makes it the owner of the database
# (and so of its public schema), once, so migrations can create tables.
resource "digitalocean_database_user" "app" {
  cluster_id = digitalocean_database_cluster.main.id
  name       = "minitwit"
}

# The cluster's CA: the app and pg_dump verify the server against it (PGSSLMODE=verify-ca).
data "digitalocean_database_ca" "main" {
  cluster_id = digitalocean_database_cluster.main.id
}
