# qmq-console: the web console (README, Console) as a Nomad service job.
#
#   nomad var put nomad/jobs/qmq-console admin_token=<token>   # the metaserver's token (or -var admin_token=…)
#   nomad job run jobs/qmq-console.nomad.hcl
#
# The console finds what it shows through Consul, by the services the other jobs register: the
# metaserver (qmq-metaserver), the backups (qmq-backup, every one: the console asks the first that
# answers) and the watchdogs (qmq-watchdog), each only while its check passes. Nomad renders
# console.properties from the catalog and restarts the console when that changes (a metaserver
# moved, a backup added). metaserver_http, backup_http and watchdog_http pin them instead.
# Brokers and delay servers come from the metaserver; their HTTP ports (lag, backlog, pending delay
# messages) from the http_port meta of their Consul registrations (qmq-broker, qmq-delay; a
# backup's row from its qmq-backup registration), which the console reads from the catalog on
# every page. broker_http_ports overrides it per server (a server registered without Consul, or
# by an older qmq).
#
# The console registers in Consul as qmq-console (a Nomad service block: the console does not
# register itself), with an HTTP check on /health.

variable "qmq_binary" {
  type        = string
  default     = "/usr/local/bin/qmq"
  description = "Path of the qmq binary on the Nomad clients. With the exec driver it must lie inside the task's chroot (e.g. under /usr)."
}

variable "driver" {
  type        = string
  default     = "exec"
  description = "Task driver: exec or raw_exec. The console keeps no data."

  validation {
    condition     = var.driver == "exec" || var.driver == "raw_exec"
    error_message = "The driver must be exec or raw_exec."
  }
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the console may run in."
}

variable "http_port" {
  type        = number
  default     = 8090
  description = "console.port; 0: a dynamic port (find it in Consul, service qmq-console)."
}

variable "consul_address" {
  type        = string
  default     = "127.0.0.1:8500"
  description = "Consul agent HTTP address: the health checks the cluster page shows."
}

variable "metaserver_http" {
  type        = string
  default     = ""
  description = "console.metaserver.http (host:port). Empty: the first passing qmq-metaserver in Consul."
}

variable "backup_http" {
  type        = list(string)
  default     = []
  description = "console.backup.http (host:port each). Empty: every passing qmq-backup in Consul."
}

variable "watchdog_http" {
  type        = list(string)
  default     = []
  description = "console.watchdog.http (host:port each). Empty: every passing qmq-watchdog in Consul."
}

variable "broker_http_ports" {
  type        = map(string)
  default     = {}
  description = "console.broker.http.ports: overrides, by ip:servePort, the HTTP port a broker or delay server gives in its Consul registration (meta http_port), e.g. { \"10.0.0.2:20881\" = \"8081\" }. Empty: Consul says."
}

variable "broker_http_offset" {
  type        = number
  default     = -1
  description = "console.broker.http.offset: HTTP port = servePort + this for servers neither in broker_http_ports nor with an http_port in Consul; -1 unknown (the jobs' defaults, 20881 and 8081, follow no offset)."
}

variable "read_open" {
  type        = bool
  default     = false
  description = "console.read.open: anyone who reaches the console may read every page. Writes always need the token."
}

variable "admin_token" {
  type        = string
  default     = ""
  description = "The admin token (the metaserver's). Empty (better): read from the Nomad variable nomad/jobs/qmq-console, key admin_token."
}

variable "backup_token" {
  type        = string
  default     = ""
  description = "console.backup.token, sent to the backups on resend (their backup.admin.token). Empty: the caller's admin token is passed on."
}

variable "console_config" {
  type        = map(string)
  default     = {}
  description = "More console.properties keys, passed as --set key=value (e.g. { \"console.fetch.timeout.ms\" = \"2000\" })."
}

variable "cpu" {
  type    = number
  default = 200
}

variable "memory" {
  type    = number
  default = 128
}

locals {
  config_args = flatten([for k, v in merge(var.console_config, {
    "consul.address"             = var.consul_address
    "console.broker.http.offset" = "${var.broker_http_offset}"
    "console.read.open"          = "${var.read_open}"
  }) : ["--set", "${k}=${v}"]])

  # A consul-template range over a service's passing instances, as host:port,host:port. Without
  # any, the metaserver line names what is missing: console.metaserver.http must be host:port, so
  # the console then stops with that value in its error (and Nomad restarts it once the catalog
  # changes), instead of falling back to its default 127.0.0.1:8080.
  metaserver_line = var.metaserver_http != "" ? var.metaserver_http : "{{ with service \"qmq-metaserver\" }}{{ with index . 0 }}{{ .Address }}:{{ .Port }}{{ end }}{{ else }}no-passing-qmq-metaserver-in-consul{{ end }}"
  backup_line     = length(var.backup_http) > 0 ? join(",", var.backup_http) : "{{ range $i, $s := service \"qmq-backup\" }}{{ if $i }},{{ end }}{{ $s.Address }}:{{ $s.Port }}{{ end }}"
  watchdog_line   = length(var.watchdog_http) > 0 ? join(",", var.watchdog_http) : "{{ range $i, $s := service \"qmq-watchdog\" }}{{ if $i }},{{ end }}{{ $s.Address }}:{{ $s.Port }}{{ end }}"
  ports_line      = join(",", [for k, v in var.broker_http_ports : "${k}=${v}"])

  properties = <<-EOT
    # Rendered by Nomad (jobs/qmq-console.nomad.hcl) from the variables and the Consul catalog.
    console.metaserver.http=${local.metaserver_line}
    console.backup.http=${local.backup_line}
    console.watchdog.http=${local.watchdog_line}
    console.broker.http.ports=${local.ports_line}
    console.backup.token=${var.backup_token}
    console.tokens.file=valid-api-tokens.properties
  EOT
}

job "qmq-console" {
  type        = "service"
  datacenters = var.datacenters

  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "5s"
    healthy_deadline = "3m"
  }

  group "console" {
    count = 1

    network {
      # A static port (http_port), or a dynamic one with http_port = 0.
      dynamic "port" {
        for_each = var.http_port > 0 ? [var.http_port] : []
        labels   = ["http"]
        content {
          static = port.value
        }
      }
      dynamic "port" {
        for_each = var.http_port > 0 ? [] : ["dynamic"]
        labels   = ["http"]
        content {}
      }
    }

    # Stateless: restarted in place a few times, then placed anew.
    restart {
      attempts = 10
      interval = "10m"
      delay    = "5s"
      mode     = "fail"
    }

    service {
      name     = "qmq-console"
      provider = "consul"
      port     = "http"
      tags     = ["qmq", "console"]

      check {
        name     = "qmq-console /health"
        type     = "http"
        path     = "/health"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "console" {
      driver       = var.driver
      kill_timeout = "10s"

      config {
        command = var.qmq_binary
        # The configuration is in secrets/: it holds the admin token and the backup's.
        args = concat(["console", "--conf", "${NOMAD_SECRETS_DIR}/conf"], local.config_args, [
          "--set", "console.port=${NOMAD_PORT_http}",
          "--set", "console.bind.host=${NOMAD_IP_http}",
        ])
      }

      template {
        destination = "secrets/conf/console.properties"
        data        = local.properties
        change_mode = "restart"
        # consul-template waits this long for the catalog to settle before a restart: a
        # failover's deregistration and registration give one restart, not two.
        wait {
          min = "2s"
          max = "10s"
        }
      }

      template {
        destination = "secrets/conf/valid-api-tokens.properties"
        data        = var.admin_token != "" ? "${var.admin_token}=qmq-console Nomad job\n" : "{{ with nomadVar \"nomad/jobs/qmq-console\" }}{{ .admin_token }}=qmq-console Nomad job{{ end }}\n"
        change_mode = "restart"
      }

      env {
        CONSUL_HTTP_ADDR = var.consul_address
      }

      resources {
        cpu    = var.cpu
        memory = var.memory
      }
    }
  }
}
