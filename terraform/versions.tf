terraform {
  required_version = ">= 1.6.0"

  required_providers {
    digitalocean = {
      source  = "digitalocean/digitalocean"
      version = "~> 2.55"
    }
  }

  # State holds the database passwords and the generated Spaces key: keep it
  # off laptops and out of git. See README.md ("State") for the Spaces backend.
  # backend "s3" {}
}

# Credentials come from the environment, never from a committed file:
# DIGITALOCEAN_TOKEN, and SPACES_ACCESS_KEY_ID / SPACES_SECRET_ACCESS_KEY for the bucket.
provider "digitalocean" {}
