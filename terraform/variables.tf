# --- where and what -------------------------------------------------------------------------

variable "project_name" {
  description = "Prefix of every resource name and tag (droplets are <project_name>-blue and <project_name>-green)."
  type        = string
  default     = "minitwit"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.project_name))
    error_message = "project_name: 3 to 22 lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "region" {
  description = "DigitalOcean region of everything (droplets, reserved IPs, database, bucket); it must offer Spaces."
  type        = string
  default     = "fra1"

  validation {
    condition     = contains(["nyc3", "sfo2", "sfo3", "ams3", "fra1", "lon1", "sgp1", "syd1", "blr1", "tor1", "atl1"], var.region)
    error_message = "region must be a DigitalOcean region with Spaces (nyc3, sfo2, sfo3, ams3, fra1, lon1, sgp1, syd1, blr1, tor1, atl1)."
  }
}

variable "vpc_ip_range" {
  description = "Private address range of the VPC the droplets and the database share."
  type        = string
  default     = "10.110.0.0/20"

  validation {
    condition     = can(cidrhost(var.vpc_ip_range, 0)) && can(regex("^(10\\.|172\\.(1[6-9]|2[0-9]|3[01])\\.|192\\.168\\.)", var.vpc_ip_range))
    error_message = "vpc_ip_range must be a private IPv4 CIDR (10/8, 172.16/12 or 192.168/16)."
  }
}

variable "droplet_size" {
  description = "Size slug of each of the two app droplets (both must carry the full load alone)."
  type        = string
  default     = "s-2vcpu-4gb"

  validation {
    condition     = can(regex("^(s|c|c2|g|gd|m|m3|so|so1_5)-[a-z0-9-]+$", var.droplet_size))
    error_message = "droplet_size must be a droplet size slug such as s-2vcpu-4gb."
  }
}

variable "droplet_image" {
  description = "Droplet image; cloud-init (templates/cloud-init.yaml.tftpl) is written for Ubuntu 24.04."
  type        = string
  default     = "ubuntu-24-04-x64"

  validation {
    condition     = can(regex("^ubuntu-2[4-9]-04-x64$", var.droplet_image))
    error_message = "droplet_image must be an Ubuntu LTS x64 image, 24.04 or later."
  }
}

# --- who may log in -------------------------------------------------------------------------

variable "ssh_key_fingerprints" {
  description = "Fingerprints (or ids) of SSH keys already in the DigitalOcean account, installed for root on both droplets."
  type        = list(string)

  validation {
    condition     = length(var.ssh_key_fingerprints) > 0 && alltrue([for k in var.ssh_key_fingerprints : can(regex("^([0-9a-f]{2}:){15}[0-9a-f]{2}$|^[0-9]+$", k))])
    error_message = "ssh_key_fingerprints: at least one MD5 fingerprint (aa:bb:...) or numeric key id."
  }
}

variable "admin_cidrs" {
  description = "The only addresses SSH (port 22) accepts connections from: the admins' and the deploying CI's."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0))])
    error_message = "admin_cidrs: at least one CIDR, e.g. 203.0.113.7/32."
  }

  validation {
    condition     = alltrue([for c in var.admin_cidrs : !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "admin_cidrs must not open SSH to the whole internet."
  }
}

# --- what runs ------------------------------------------------------------------------------

variable "git_repository_url" {
  description = "HTTPS URL of this repository; each droplet clones it to /opt/minitwit for the stack file and the deploy scripts."
  type        = string

  validation {
    condition     = can(regex("^https://[^\\s@]+$", var.git_repository_url))
    error_message = "git_repository_url must be an https:// URL without credentials."
  }
}

variable "git_ref" {
  description = "Branch, tag or commit the droplets check out at first boot (later releases pass their own to deploy/release.sh)."
  type        = string
  default     = "main"

  validation {
    condition     = can(regex("^[A-Za-z0-9_./-]+$", var.git_ref))
    error_message = "git_ref may hold letters, digits, '_', '.', '/' and '-' only."
  }
}

variable "app_image" {
  description = "The app's container image without a tag, e.g. ghcr.io/OWNER/minitwit (what CD pushes)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+$", var.app_image))
    error_message = "app_image must be an image name without a tag, e.g. ghcr.io/owner/minitwit."
  }
}

variable "app_image_tag" {
  description = "Image tag released at first boot; blue-green deploys move it on afterwards."
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.app_image_tag))
    error_message = "app_image_tag must be a valid image tag."
  }
}

variable "app_replicas" {
  description = "App replicas per droplet (Swarm deploy.replicas), behind HAProxy."
  type        = number
  default     = 2

  validation {
    condition     = var.app_replicas >= 1 && var.app_replicas <= 20 && floor(var.app_replicas) == var.app_replicas
    error_message = "app_replicas must be a whole number from 1 to 20."
  }
}

variable "app_workers" {
  description = "uvicorn worker processes per replica (MINITWIT_WORKERS)."
  type        = number
  default     = 1

  validation {
    condition     = var.app_workers >= 1 && var.app_workers <= 16 && floor(var.app_workers) == var.app_workers
    error_message = "app_workers must be a whole number from 1 to 16."
  }
}

variable "db_pool_size" {
  description = "PostgreSQL connections per worker (MINITWIT_DB_POOL_SIZE)."
  type        = number
  default     = 4

  validation {
    condition     = var.db_pool_size >= 1 && var.db_pool_size <= 50 && floor(var.db_pool_size) == var.db_pool_size
    error_message = "db_pool_size must be a whole number from 1 to 50."
  }
}

variable "secure_cookies" {
  description = "Mark the session cookie Secure (MINITWIT_SECURE_COOKIES). Turn on once TLS terminates in front of port 80; over plain HTTP browsers would drop the cookie."
  type        = bool
  default     = false
}

# --- the database ---------------------------------------------------------------------------

variable "postgres_version" {
  description = "Major PostgreSQL version of the managed cluster (the droplets install the matching pg_dump)."
  type        = string
  default     = "16"

  validation {
    condition     = contains(["14", "15", "16", "17"], var.postgres_version)
    error_message = "postgres_version must be 14, 15, 16 or 17."
  }
}

variable "db_size" {
  description = "Size slug of each database node."
  type        = string
  default     = "db-s-1vcpu-1gb"

  validation {
    condition     = can(regex("^(db|gd|so1_5|m)-[a-z0-9-]+$", var.db_size))
    error_message = "db_size must be a database size slug such as db-s-1vcpu-1gb."
  }
}

variable "db_standby_nodes" {
  description = "Standby nodes beside the primary (0 to 2): DigitalOcean fails over to one automatically."
  type        = number
  default     = 1

  validation {
    condition     = contains([0, 1, 2], var.db_standby_nodes)
    error_message = "db_standby_nodes must be 0, 1 or 2."
  }
}

variable "db_connection_limit" {
  description = "Connections the database size allows to clients (db-s-1vcpu-1gb: 22). Both droplets together must stay under it: see the precondition in main.tf."
  type        = number
  default     = 22

  validation {
    condition     = var.db_connection_limit >= 10
    error_message = "db_connection_limit must be at least 10."
  }
}

# --- backups --------------------------------------------------------------------------------

variable "backup_bucket_name" {
  description = "Name of the Spaces bucket the database backups go to (globally unique within the region)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.backup_bucket_name))
    error_message = "backup_bucket_name: 3 to 63 lowercase letters, digits and dashes."
  }
}

variable "backup_retention_days" {
  description = "Days a backup is kept: deploy/backup/backup.sh prunes older ones, and the bucket's lifecycle rule expires them a week later as a backstop."
  type        = number
  default     = 14

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 3650 && floor(var.backup_retention_days) == var.backup_retention_days
    error_message = "backup_retention_days must be a whole number from 1 to 3650."
  }
}

variable "backup_schedule" {
  description = "When the backup runs: a systemd OnCalendar expression (default: daily at 03:17 UTC)."
  type        = string
  default     = "*-*-* 03:17:00 UTC"

  validation {
    condition     = can(regex("^[A-Za-z0-9*,./:~ -]+$", var.backup_schedule))
    error_message = "backup_schedule must be a systemd OnCalendar expression, e.g. '*-*-* 03:17:00 UTC' or 'hourly'."
  }
}

# --- secrets: pass as TF_VAR_* or in a gitignored *.tfvars, never committed --------------------

variable "minitwit_secret_key" {
  description = "MINITWIT_SECRET_KEY: signs session cookies. At least 32 characters (e.g. openssl rand -hex 32)."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.minitwit_secret_key) >= 32
    error_message = "minitwit_secret_key must be at least 32 characters."
  }
}

variable "simulator_username" {
  description = "SIMULATOR_USERNAME: the user name the simulator sends in its Basic credentials."
  type        = string
  default     = "simulator"
}

variable "simulator_password" {
  description = "SIMULATOR_PASSWORD: the password the simulator sends in its Basic credentials."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.simulator_password) >= 8
    error_message = "simulator_password must be at least 8 characters."
  }
}

variable "failover_do_token" {
  description = "DigitalOcean token the droplets use to move the reserved IPs (keepalived, backups). Make it a custom-scoped token: reserved_ip read/update, droplet read, actions read."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.failover_do_token) >= 32
    error_message = "failover_do_token does not look like a DigitalOcean token."
  }
}

variable "registry_username" {
  description = "User name for pulling app_image from a private registry (GHCR: a GitHub user); empty for a public image."
  type        = string
  default     = ""
}

variable "registry_password" {
  description = "Token for pulling app_image (GHCR: a token with read:packages only); empty for a public image."
  type        = string
  default     = ""
  sensitive   = true
}
