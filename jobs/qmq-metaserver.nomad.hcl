# qmq-metaserver: QMQ's metaserver as a Nomad service job (see jobs/doc.go and README, Deploy on Nomad).
#
#   nomad var put nomad/jobs/qmq-metaserver admin_token=<token>   # or -var admin_token=<token> below
#   nomad job run jobs/qmq-metaserver.nomad.hcl
#
# The metaserver registers itself in Consul as qmq-metaserver (consul.address below), with an HTTP
# check on /health; brokers and clients find it at consul://qmq-metaserver. There is no Nomad
# service block: it would register the same service a second time.

variable "qmq_binary" {
  type        = string
  default     = "/usr/local/bin/qmq"
  description = "Path of the qmq binary on the Nomad clients. With the exec driver it must lie inside the task's chroot (e.g. under /usr)."
}

variable "driver" {
  type        = string
  default     = "exec"
  description = "Task driver: exec (isolated; mounts the host volume at store_root) or raw_exec (no isolation, no mounts: store_root is then the host volume's path)."

  validation {
    condition     = var.driver == "exec" || var.driver == "raw_exec"
    error_message = "The driver must be exec or raw_exec."
  }
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the metaserver may run in."
}

variable "metaserver_count" {
  type        = number
  default     = 1
  description = "Number of metaservers. Keep 1 with the embedded SQLite store; more than 1 only with jdbc_url (they then share the MySQL database)."
}

variable "http_port" {
  type        = number
  default     = 8080
  description = "meta.server.discover.port: HTTP (/meta/address, /management for qmq tools, /health, /metrics)."
}

variable "tcp_port" {
  type        = number
  default     = 20880
  description = "meta.server.port: the QMQ protocol port of brokers and clients."
}

variable "consul_address" {
  type        = string
  default     = "127.0.0.1:8500"
  description = "Consul agent HTTP address the metaserver registers with (the node's local agent)."
}

variable "admin_token" {
  type        = string
  default     = ""
  description = "API token of qmq tools (the key of valid-api-tokens.properties). Empty (better: the token stays out of the job): it is read from the Nomad variable nomad/jobs/qmq-metaserver, key admin_token (nomad var put nomad/jobs/qmq-metaserver admin_token=<token>). Either way: no whitespace, '=', ':', '\\', '{' or '}', and no leading '#' or '!'."

  validation {
    condition     = var.admin_token == "" || regex_replace(var.admin_token, "^[^\\s=:\\\\{}#!][^\\s=:\\\\{}]*$", "") == ""
    error_message = "The admin_token must be without whitespace, '=', ':', '\\', '{' or '}', and must not start with '#' or '!' (it is written as a key of valid-api-tokens.properties)."
  }
}

variable "volume" {
  type        = string
  default     = "qmq-metaserver"
  description = "Host volume (client host_volume) holding the embedded SQLite store. Unused with jdbc_url."
}

variable "store_root" {
  type        = string
  default     = "/data"
  description = "store.root as the task sees it: where exec mounts the host volume; with raw_exec, the host volume's path on the client."
}

variable "jdbc_url" {
  type        = string
  default     = ""
  description = "MySQL database instead of the embedded SQLite store: jdbc:mysql://host:3306/qmq_metaserver?useSSL=false (schema: schema/init.sql). Empty = SQLite on the host volume."
}

variable "jdbc_username" {
  type    = string
  default = ""
}

variable "jdbc_password" {
  type    = string
  default = ""
}

variable "metaserver_config" {
  type        = map(string)
  default     = {}
  description = "More metaserver.properties keys, passed as --set key=value (e.g. { \"min.group.num\" = \"2\" })."
}

variable "delay_admin_secret" {
  type        = string
  default     = ""
  description = "delay.admin.secret: CancelDelay (qmq tools CancelDelay) signs its requests to the delay masters with it; the same value as the delay servers'. Empty (better): read from the key delay_admin_secret of the Nomad variable nomad/jobs/qmq-metaserver; without it CancelDelay is refused."
}

variable "cpu" {
  type    = number
  default = 500
}

variable "memory" {
  type    = number
  default = 256
}

locals {
  sqlite = var.jdbc_url == ""
  # --set flags of metaserver_config; the task adds the keys Nomad decides (ports, IP) after
  # them, so that those win.
  config_args = flatten([for k, v in merge(var.metaserver_config, {
    "consul.address" = var.consul_address
    "store.root"     = var.store_root
  }) : ["--set", "${k}=${v}"]])

  # Where delay.admin.secret comes from: the variable, the job's Nomad variable (only when the
  # token comes from there too: a template on a Nomad variable that does not exist would hold the
  # task), or nowhere.
  delay_secret_from = var.delay_admin_secret != "" ? "var" : (var.admin_token == "" ? "nomadvar" : "none")
  delay_secret_args = local.delay_secret_from == "none" ? [] : ["--set", "delay.admin.secret.file=${NOMAD_SECRETS_DIR}/delay-admin.secret"]
}

job "qmq-metaserver" {
  type        = "service"
  datacenters = var.datacenters

  update {
    max_parallel     = 1
    health_check     = "task_states"
    min_healthy_time = "10s"
    healthy_deadline = "3m"
  }

  group "metaserver" {
    count = var.metaserver_count

    network {
      port "http" {
        static = var.http_port
      }
      port "tcp" {
        static = var.tcp_port
      }
    }

    # The SQLite store lives on a host volume: the metaserver is placed on a client that has it.
    dynamic "volume" {
      for_each = local.sqlite ? [var.volume] : []
      labels   = ["data"]
      content {
        type      = "host"
        source    = volume.value
        read_only = false
      }
    }

    restart {
      attempts = 10
      interval = "30m"
      delay    = "10s"
      mode     = "fail"
    }

    task "metaserver" {
      driver       = var.driver
      kill_timeout = "15s"

      config {
        command = var.qmq_binary
        args = concat(["metaserver", "--conf", "${NOMAD_TASK_DIR}/conf"], local.config_args, [
          "--set", "meta.server.discover.port=${NOMAD_PORT_http}",
          "--set", "meta.server.port=${NOMAD_PORT_tcp}",
          # The IP put in /meta/address and registered in Consul: the node's, not the
          # loopback address that reaches the local Consul agent.
          "--set", "meta.server.advertise.ip=${NOMAD_IP_http}",
        ], local.delay_secret_args)
      }

      # raw_exec mounts nothing: the store is then written straight to store_root on the host.
      dynamic "volume_mount" {
        for_each = local.sqlite && var.driver != "raw_exec" ? ["data"] : []
        content {
          volume      = volume_mount.value
          destination = var.store_root
          read_only   = false
        }
      }

      # The token file is reloaded by the metaserver itself; SIGHUP makes it immediate.
      template {
        destination   = "local/conf/valid-api-tokens.properties"
        data          = var.admin_token != "" ? "${var.admin_token}=qmq-metaserver Nomad job\n" : "{{ with nomadVar \"nomad/jobs/qmq-metaserver\" }}{{ .admin_token }}=qmq-metaserver Nomad job{{ end }}\n"
        change_mode   = "signal"
        change_signal = "SIGHUP"
      }

      # delay.admin.secret (CancelDelay) as a file in secrets/, never on the command line: from the
      # variable, or else from the Nomad variable that already holds the token (none when the
      # token is given as a variable and the secret is not: CancelDelay is then refused).
      dynamic "template" {
        for_each = local.delay_secret_from == "none" ? [] : ["delay-admin.secret"]
        content {
          destination = "secrets/${template.value}"
          data        = local.delay_secret_from == "var" ? "${var.delay_admin_secret}\n" : "{{ with nomadVar \"nomad/jobs/qmq-metaserver\" }}{{ .delay_admin_secret }}{{ end }}\n"
        }
      }

      # datasource.properties keys through the environment: the password stays out of the
      # command line, and an empty jdbc.url means the embedded SQLite store.
      env {
        QMQ_JDBC_URL      = var.jdbc_url
        QMQ_JDBC_USERNAME = var.jdbc_username
        QMQ_JDBC_PASSWORD = var.jdbc_password
      }

      resources {
        cpu    = var.cpu
        memory = var.memory
      }
    }
  }
}
