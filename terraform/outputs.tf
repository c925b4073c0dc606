output "public_ip" {
  description = "The address users and the simulator use (the active side); point DNS here."
  value       = digitalocean_reserved_ip.public.ip_address
}

output "standby_ip" {
  description = "The passive side's address: blue-green releases deploy and verify here before the swap."
  value       = digitalocean_reserved_ip.standby.ip_address
}

output "blue_green_env" {
  description = "The settings deploy/blue-green.sh needs besides DIGITALOCEAN_TOKEN: eval \"$(terraform output -raw blue_green_env)\"."
  value       = "export PUBLIC_IP=${digitalocean_reserved_ip.public.ip_address} STANDBY_IP=${digitalocean_reserved_ip.standby.ip_address}"
}

output "droplets" {
  description = "Each side's droplet: id, name, own public and VPC addresses."
  value = {
    for side, droplet in digitalocean_droplet.app : side => {
      id         = droplet.id
      name       = droplet.name
      ipv4       = droplet.ipv4_address
      private_ip = droplet.ipv4_address_private
    }
  }
}

output "database_host" {
  description = "The database's private host name (reachable from the droplets only)."
  value       = digitalocean_database_cluster.main.private_host
}

output "database_url" {
  description = "The app's DATABASE_URL (private network). Sensitive: terraform output -raw database_url."
  value       = local.database_url
  sensitive   = true
}

output "backup_bucket" {
  description = "Where the backups are: BACKUP_DEST for deploy/backup/restore.sh."
  value       = "s3://${digitalocean_spaces_bucket.backups.name}/postgres"
}

output "backup_s3_endpoint" {
  description = "S3_ENDPOINT for deploy/backup/restore.sh."
  value       = "https://${var.region}.digitaloceanspaces.com"
}

output "firewall_id" {
  description = "The droplets' cloud firewall."
  value       = digitalocean_firewall.app.id
}
