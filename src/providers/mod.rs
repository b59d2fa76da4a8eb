//! Provider adapters, one file or folder per owning system, and the one list
//! that registers them: each adapter's provider kind with its settings type,
//! and the credential kinds it owns. Everything the core knows about kinds is
//! generated from this list (see `crate::provider::kind`).
pub mod account;
pub mod atlassian;
pub mod aws;
pub mod declarative;
pub mod ldap;
pub mod memory;
pub mod mysql;
pub mod mysql_tls;
pub mod okta;
pub mod pg_tls;
pub mod postgres;
pub mod redis;
pub mod slack;
pub mod vault;

crate::register_adapters! {
    /// HashiCorp Vault or OpenBao.
    "vault" => Vault(vault::config::VaultProviderConfig) {
        /// A Vault/OpenBao token, known by its accessor.
        "vault_token" => VaultToken(vault::config::TokenKind),
        /// An AppRole secret-id, known by role and secret-id accessor.
        "vault_approle_secret_id" => VaultApproleSecretId(vault::config::SecretIdKind),
        /// A KV v2 secret whose value is itself the credential (a shared password, say).
        "vault_kv_secret" => VaultKvSecret(vault::config::KvKind),
    },
    /// AWS: IAM access keys, Secrets Manager secrets, and Secrets Manager as a store.
    "aws" => Aws(aws::config::AwsProviderConfig) {
        /// An IAM user's access key.
        "aws_iam_access_key" => AwsIamAccessKey(aws::config::AccessKeyKind),
        /// A Secrets Manager secret whose value is itself the credential.
        "aws_secretsmanager_secret" => AwsSecretsmanagerSecret(aws::config::SecretKind),
    },
    /// A PostgreSQL server (login roles).
    "postgres" => Postgres(postgres::PostgresProviderConfig) {
        /// A PostgreSQL login role's password.
        "postgres_role" => PostgresRole(postgres::RoleKind),
    },
    /// A MySQL or MariaDB server (users).
    "mysql" => Mysql(mysql::MysqlProviderConfig) {
        /// A MySQL/MariaDB user's password (`'user'@'host'`).
        "mysql_user" => MysqlUser(mysql::UserKind),
    },
    /// A Redis server (ACL users).
    "redis" => Redis(redis::RedisProviderConfig) {
        /// A Redis ACL user's password.
        "redis_acl_user" => RedisAclUser(redis::AclUserKind),
    },
    /// An LDAP directory (service accounts' userPassword).
    "ldap" => Ldap(ldap::LdapProviderConfig) {
        /// An LDAP entry's `userPassword` (the account is its DN).
        "ldap_account" => LdapAccount(ldap::AccountKind),
    },
    /// An Okta org: API tokens (re-issued by a person, revoked and proven dead by API) and service-app client secrets.
    "okta" => Okta(okta::config::OktaProviderConfig) {
        /// An Okta API token (SSWS), known by its id.
        "okta_api_token" => OktaApiToken(okta::config::ApiTokenKind),
        /// An OAuth 2.0 service app's client secret (two at a time: add, test, promote, delete the old).
        "okta_client_secret" => OktaClientSecret(okta::config::ClientSecretKind),
    },
    /// An Atlassian Cloud organization: managed accounts' API tokens (re-issued by a person, revoked and proven dead by API) and service accounts' OAuth credentials.
    "atlassian" => Atlassian(atlassian::config::AtlassianProviderConfig) {
        /// A managed account's API token (Basic `email:token`), known by its id.
        "atlassian_api_token" => AtlassianApiToken(atlassian::config::ApiTokenKind),
        /// A service account's OAuth 2.0 client credentials (re-issued by a person beside the old one; the old client is then deleted).
        "atlassian_service_account_credential" => AtlassianServiceAccountCredential(atlassian::config::ServiceAccountCredentialKind),
    },
    /// A SaaS vendor's token API described by a recipe (`playbooks/recipes/`): inventory, identity, mint, retire and a probe with ordered rules.
    "http" => Http(declarative::config::HttpProviderConfig) {
        /// A token of a vendor described by an `http` recipe, known by its id, its name, or the account it acts as.
        "http_token" => HttpToken(declarative::config::TokenKind),
    },
    /// A Slack workspace: bot and user tokens (revoked by presenting them, re-issued by a person) and the access tokens of apps with token rotation on (refreshed).
    "slack" => Slack(slack::config::SlackProviderConfig) {
        /// A bot or user token that does not rotate, known by the member it acts as.
        "slack_token" => SlackToken(slack::config::TokenKind),
        /// The access token of an app with token rotation on, refreshed with its single-use refresh token.
        "slack_rotating_token" => SlackRotatingToken(slack::config::RotatingTokenKind),
    },
    /// An in-process system and store, with injected faults (tests, demos, benchmarks).
    "memory" => Memory(memory::config::MemoryProviderConfig) { "memory_token" => MemoryToken(memory::config::TokenKind), "memory_password" => MemoryPassword(memory::config::PasswordKind) },
}
