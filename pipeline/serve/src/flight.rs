//! Arrow Flight SQL: analysts and BI tools (pandas through pyarrow or
//! ADBC, JDBC, Grafana's FlightSQL datasource) read every table and view of
//! the store as Arrow.
//!
//! Its part of the data path is the same as the REST API's reads: every
//! statement runs on the store's `QueryService`, as of one published
//! snapshot, never waiting for the writer. Statements are read-only (the
//! same checks as `finopsia query`: no DDL, DML, `COPY`, `SET`; the
//! sessions have no table functions that read files or the network).
//! Results are streamed batch by batch as the query produces them (tonic's
//! HTTP/2 flow control holds the producer back when the client is slow),
//! with a row limit, a byte limit and a timeout (`[flight]`).
//!
//! Access uses the REST API's tokens (`finopsia token create`): a bearer
//! token (`authorization: Bearer …`) on every call, or a `Handshake` with
//! basic auth whose password is the token (the user name is ignored), which
//! answers with the bearer header to use. `read` is enough.
//!
//! State: prepared statements (their SQL and bound parameters) live in
//! memory only; nothing here is durable, a restart forgets them and clients
//! prepare again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use finopsia_core::settings::text_or_number;
use finopsia_core::timefmt::parse_duration;
use finopsia_store::snapshot::QueryService;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::tokens::{Role, TokenStore};

/// The `[flight]` configuration section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlightConfig {
    /// Serve Flight SQL from `finopsia run`.
    pub enabled: bool,
    /// Listen address, `HOST:PORT` (`--flight-addr` overrides it). Port 0
    /// picks a free port; the address in use is logged and written to
    /// `<data_dir>/state/flight.json`.
    pub addr: String,
    /// A statement still running after this is cancelled.
    #[serde(deserialize_with = "text_or_number")]
    pub query_timeout: String,
    /// Largest result, in rows and in bytes of Arrow data (0: no limit);
    /// a larger result ends with an error after the limit.
    pub max_rows: u64,
    pub max_bytes: u64,
}

impl Default for FlightConfig {
    fn default() -> Self {
        FlightConfig {
            enabled: true,
            addr: "127.0.0.1:50051".into(),
            query_timeout: "10m".into(),
            max_rows: 0,
            max_bytes: 0,
        }
    }
}

impl FlightConfig {
    pub fn validate(&self) -> crate::Result<()> {
        self.addr.parse::<SocketAddr>().map_err(|_| {
            crate::Error::Config(format!(
                "flight.addr = {:?} is not HOST:PORT like 127.0.0.1:50051",
                self.addr
            ))
        })?;
        if parse_duration(&self.query_timeout).is_none_or(|d| d.is_zero()) {
            return Err(crate::Error::Config(format!(
                "flight.query_timeout = {:?} is not a positive duration like 30s, 10m",
                self.query_timeout
            )));
        }
        Ok(())
    }

    fn timeout(&self) -> Duration {
        parse_duration(&self.query_timeout).unwrap_or(Duration::from_secs(600))
    }
}

/// A prepared statement: its SQL and the parameters bound last.
#[derive(Clone)]
struct Prepared {
    sql: String,
    params: Option<Vec<ScalarValue>>,
}

/// The Flight SQL service.
#[derive(Clone)]
pub struct FlightSql {
    queries: QueryService,
    tokens: Arc<TokenStore>,
    config: FlightConfig,
    prepared: Arc<Mutex<HashMap<String, Prepared>>>,
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

fn refused(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

/// `?` placeholders (ADBC's and JDBC's style) outside quotes become `$1`,
/// `$2`, … (DataFusion's).
fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let (mut n, mut quote) = (0, None::<char>);
    for c in sql.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (Some(q), _) if c == q => {
                quote = None;
                out.push(c);
            }
            (None, '?') => {
                n += 1;
                out.push_str(&format!("${n}"));
            }
            _ => out.push(c),
        }
    }
    out
}

static SQL_INFO: std::sync::LazyLock<SqlInfoData> = std::sync::LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "FinOpsia");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.build().expect("sql info")
});

fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

fn foreign_keys_schema() -> SchemaRef {
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        s("pk_catalog_name", true),
        s("pk_db_schema_name", true),
        s("pk_table_name", false),
        s("pk_column_name", false),
        s("fk_catalog_name", true),
        s("fk_db_schema_name", true),
        s("fk_table_name", false),
        s("fk_column_name", false),
        Field::new("key_sequence", DataType::Int32, false),
        s("fk_key_name", true),
        s("pk_key_name", true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

fn info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor))
}

/// One batch as a Flight stream.
fn one_batch(schema: SchemaRef, batch: Result<RecordBatch, FlightError>) -> DoGetStream {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async move { batch }))
        .map_err(Status::from);
    Box::pin(stream)
}

impl FlightSql {
    pub fn new(queries: QueryService, tokens: Arc<TokenStore>, config: FlightConfig) -> FlightSql {
        FlightSql {
            queries,
            tokens,
            config,
            prepared: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The bearer token of a request, checked: `read` or more.
    #[allow(clippy::result_large_err)]
    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let Some(value) = req.metadata().get("authorization") else {
            return Err(Status::unauthenticated(
                "send `authorization: Bearer <token>` or a Handshake with basic auth whose password is the token (create one with `finopsia token create --role read`)",
            ));
        };
        let text = value
            .to_str()
            .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
        let token = match text.trim().split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => {
                return Err(Status::unauthenticated(
                    "the authorization header must be `Bearer <token>`",
                ))
            }
        };
        self.check(token)
    }

    #[allow(clippy::result_large_err)]
    fn check(&self, token: &str) -> Result<(), Status> {
        match self.tokens.verify(token) {
            Ok(Some(p)) if p.role >= Role::Read => Ok(()),
            Ok(Some(_)) => Err(Status::permission_denied("this token's role cannot read")),
            Ok(None) => Err(Status::unauthenticated("unknown or revoked token")),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    async fn session(&self) -> Result<SessionContext, Status> {
        let (ctx, _) = self
            .queries
            .context()
            .await
            .map_err(|e| Status::unavailable(format!("store: {e}")))?;
        Ok(ctx)
    }

    /// Plans `sql` read-only, with `params` bound.
    async fn plan(
        &self,
        sql: &str,
        params: Option<Vec<ScalarValue>>,
    ) -> Result<datafusion::prelude::DataFrame, Status> {
        let ctx = self.session().await?;
        let df = ctx
            .sql_with_options(&numbered_placeholders(sql), read_only())
            .await
            .map_err(refused)?;
        match params {
            Some(p) => df
                .with_param_values(ParamValues::List(p.into_iter().map(Into::into).collect()))
                .map_err(refused),
            None => Ok(df),
        }
    }

    /// Runs `sql` and streams its batches, within the limits.
    async fn stream(
        &self,
        sql: &str,
        params: Option<Vec<ScalarValue>>,
    ) -> Result<DoGetStream, Status> {
        let df = self.plan(sql, params).await?;
        let batches = df
            .execute_stream()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let schema = batches.schema();
        let deadline = tokio::time::Instant::now() + self.config.timeout();
        let (max_rows, max_bytes) = (self.config.max_rows, self.config.max_bytes);
        let timeout = self.config.query_timeout.clone();
        let limited = futures::stream::unfold(
            (batches, 0u64, 0u64, false),
            move |(mut s, rows, bytes, done)| {
                let timeout = timeout.clone();
                async move {
                    if done {
                        return None;
                    }
                    let next = match tokio::time::timeout_at(deadline, s.next()).await {
                        Err(_) => Some(Err(FlightError::Tonic(Box::new(
                            Status::deadline_exceeded(format!(
                                "the statement ran longer than flight.query_timeout ({timeout})"
                            )),
                        )))),
                        Ok(None) => None,
                        Ok(Some(Err(e))) => Some(Err(FlightError::ExternalError(Box::new(e)))),
                        Ok(Some(Ok(b))) => {
                            let rows = rows + b.num_rows() as u64;
                            let bytes = bytes + b.get_array_memory_size() as u64;
                            if max_rows > 0 && rows > max_rows {
                                Some(Err(FlightError::Tonic(Box::new(
                                    Status::resource_exhausted(format!(
                                    "the result has more than flight.max_rows ({max_rows}) rows"
                                )),
                                ))))
                            } else if max_bytes > 0 && bytes > max_bytes {
                                Some(Err(FlightError::Tonic(Box::new(
                                    Status::resource_exhausted(format!(
                                        "the result is larger than flight.max_bytes ({max_bytes})"
                                    )),
                                ))))
                            } else {
                                return Some((Ok(b), (s, rows, bytes, false)));
                            }
                        }
                    };
                    next.map(|r| (r, (s, rows, bytes, true)))
                }
            },
        );
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(limited)
            .map_err(Status::from);
        Ok(Box::pin(stream))
    }

    fn prepared(&self, handle: &[u8]) -> Result<Prepared, Status> {
        let key = String::from_utf8_lossy(handle).to_string();
        self.prepared
            .lock()
            .expect("prepared")
            .get(&key)
            .cloned()
            .ok_or_else(|| {
                Status::not_found(format!(
                    "no prepared statement {key:?} (closed, or the service restarted)"
                ))
            })
    }

    /// Every table and view: (catalog, schema, name, type, Arrow schema).
    async fn tables(&self) -> Result<Vec<(String, String, String, String, SchemaRef)>, Status> {
        let ctx = self.session().await?;
        let mut out = Vec::new();
        for catalog in ctx.catalog_names() {
            let Some(c) = ctx.catalog(&catalog) else {
                continue;
            };
            for schema in c.schema_names() {
                if schema == "information_schema" {
                    continue;
                }
                let Some(s) = c.schema(&schema) else {
                    continue;
                };
                let mut names = s.table_names();
                names.sort();
                for name in names {
                    if let Ok(Some(t)) = s.table(&name).await {
                        let kind = match t.table_type() {
                            datafusion::datasource::TableType::View => "VIEW",
                            _ => "TABLE",
                        };
                        out.push((
                            catalog.clone(),
                            schema.clone(),
                            name,
                            kind.to_string(),
                            t.schema(),
                        ));
                    }
                }
            }
        }
        Ok(out)
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
            .to_string();
        let token = match header.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(rest.trim())
                    .map_err(|_| Status::unauthenticated("basic auth is not base64"))?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| Status::unauthenticated("basic auth is not text"))?;
                let (_, password) = text
                    .split_once(':')
                    .ok_or_else(|| Status::unauthenticated("basic auth must be user:password"))?;
                password.to_string()
            }
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim().to_string(),
            _ => {
                return Err(Status::unauthenticated(
                    "Handshake needs basic auth (any user name, the token as password) or a bearer token",
                ))
            }
        };
        self.check(&token)?;
        let bearer = format!("Bearer {token}");
        let out = futures::stream::iter(vec![Ok(HandshakeResponse {
            protocol_version: 0,
            payload: token.into_bytes().into(),
        })]);
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(out));
        response.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(bearer.as_str())
                .map_err(|_| Status::unauthenticated("token is not a header value"))?,
        );
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let df = self.plan(&query.query, None).await?;
        let schema = df.schema().as_arrow().clone();
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        Ok(Response::new(info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the ticket is not a statement"))?;
        Ok(Response::new(self.stream(&sql, None).await?))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.authorize(&request)?;
        let ctx = self.session().await?;
        let sql = numbered_placeholders(&query.query);
        let plan = ctx
            .state()
            .create_logical_plan(&sql)
            .await
            .map_err(refused)?;
        read_only().verify_plan(&plan).map_err(refused)?;
        let types = plan.get_parameter_types().map_err(refused)?;
        let mut names: Vec<(usize, String, DataType)> = types
            .into_iter()
            .map(|(name, t)| {
                let n = name
                    .trim_start_matches('$')
                    .parse::<usize>()
                    .unwrap_or(usize::MAX);
                (n, name, t.unwrap_or(DataType::Utf8))
            })
            .collect();
        names.sort();
        let params = Schema::new(
            names
                .into_iter()
                .map(|(_, name, t)| Field::new(name, t, true))
                .collect::<Vec<_>>(),
        );
        let dataset = plan.schema().as_arrow().clone();
        let encode = |s: &Schema| -> Result<_, Status> {
            let IpcMessage(bytes) = SchemaAsIpc::new(s, &IpcWriteOptions::default())
                .try_into()
                .map_err(|e: datafusion::arrow::error::ArrowError| {
                    Status::internal(e.to_string())
                })?;
            Ok(bytes)
        };
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| Status::internal(e.to_string()))?;
        let handle: String = id.iter().map(|b| format!("{b:02x}")).collect();
        self.prepared.lock().expect("prepared").insert(
            handle.clone(),
            Prepared {
                sql: query.query,
                params: None,
            },
        );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: encode(&dataset)?,
            parameter_schema: encode(&params)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        self.authorize(&request)?;
        let key = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        self.prepared.lock().expect("prepared").remove(&key);
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.authorize(&request)?;
        let mut prepared = self.prepared(&query.prepared_statement_handle)?;
        let stream = request.into_inner().map_err(FlightError::from);
        let batches: Vec<RecordBatch> =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(stream)
                .try_collect()
                .await
                .map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
        let row = batches.iter().find(|b| b.num_rows() > 0);
        if batches.iter().map(|b| b.num_rows()).sum::<usize>() > 1 {
            return Err(Status::invalid_argument(
                "bind one row of parameters at a time (batches of parameter rows are not supported)",
            ));
        }
        prepared.params = match row {
            Some(b) => Some(
                b.columns()
                    .iter()
                    .map(|c| ScalarValue::try_from_array(c, 0))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(refused)?,
            ),
            None => None,
        };
        let key = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        self.prepared
            .lock()
            .expect("prepared")
            .insert(key, prepared);
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let p = self.prepared(&cmd.prepared_statement_handle)?;
        let df = self.plan(&p.sql, p.params).await?;
        let schema = df.schema().as_arrow().clone();
        Ok(Response::new(info(
            &schema,
            cmd.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let p = self.prepared(&cmd.prepared_statement_handle)?;
        Ok(Response::new(self.stream(&p.sql, p.params).await?))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.clone().into_builder(&SQL_INFO).schema();
        Ok(Response::new(info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let b = query.into_builder(&SQL_INFO);
        Ok(Response::new(one_batch(b.schema(), b.build())))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.into_builder().schema();
        Ok(Response::new(info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let mut b = query.into_builder();
        for c in self.session().await?.catalog_names() {
            b.append(c);
        }
        Ok(Response::new(one_batch(b.schema(), b.build())))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let mut b = query.into_builder();
        let ctx = self.session().await?;
        for c in ctx.catalog_names() {
            if let Some(cat) = ctx.catalog(&c) {
                for s in cat.schema_names() {
                    if s != "information_schema" {
                        b.append(&c, s);
                    }
                }
            }
        }
        Ok(Response::new(one_batch(b.schema(), b.build())))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let mut b = query.into_builder();
        for (catalog, schema, name, kind, table_schema) in self.tables().await? {
            b.append(catalog, schema, name, kind, &table_schema)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        Ok(Response::new(one_batch(b.schema(), b.build())))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        let schema = query.into_builder().schema();
        Ok(Response::new(info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let mut b = query.into_builder();
        b.append("TABLE");
        b.append("VIEW");
        Ok(Response::new(one_batch(b.schema(), b.build())))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        Ok(Response::new(info(
            &primary_keys_schema(),
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        // Delta tables declare no keys: an empty answer.
        let schema = primary_keys_schema();
        Ok(Response::new(one_batch(
            schema.clone(),
            Ok(RecordBatch::new_empty(schema)),
        )))
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        Ok(Response::new(info(
            &foreign_keys_schema(),
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let schema = foreign_keys_schema();
        Ok(Response::new(one_batch(
            schema.clone(),
            Ok(RecordBatch::new_empty(schema)),
        )))
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        Ok(Response::new(info(
            &foreign_keys_schema(),
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let schema = foreign_keys_schema();
        Ok(Response::new(one_batch(
            schema.clone(),
            Ok(RecordBatch::new_empty(schema)),
        )))
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(&request)?;
        Ok(Response::new(info(
            &foreign_keys_schema(),
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )?))
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        let schema = foreign_keys_schema();
        Ok(Response::new(one_batch(
            schema.clone(),
            Ok(RecordBatch::new_empty(schema)),
        )))
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(&request)?;
        Err(Status::unimplemented(format!(
            "ticket type {} is not supported",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// A running Flight SQL server.
pub struct FlightServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl FlightServer {
    /// Stops accepting calls, lets calls in flight finish and returns.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Err(error)) => tracing::error!(%error, "flight server failed"),
            Err(error) => tracing::error!(%error, "flight server panicked"),
            Ok(Ok(())) => {}
        }
    }
}

/// Starts the Flight SQL server on `config.addr` and notes the address in
/// use in `<data_dir>/state/flight.json`.
pub async fn start(
    data_dir: &std::path::Path,
    config: FlightConfig,
    queries: QueryService,
) -> crate::Result<FlightServer> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .map_err(|e| crate::Error::Config(format!("flight.addr {}: {e}", config.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| crate::Error::Config(e.to_string()))?;
    let tokens = Arc::new(TokenStore::open(data_dir));
    let service = FlightServiceServer::new(FlightSql::new(queries, tokens, config));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    crate::server::write_note(data_dir, "flight.json", &addr)?;
    tracing::info!(%addr, "Flight SQL listening");
    Ok(FlightServer { stop, task, addr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_outside_quotes_become_numbered() {
        assert_eq!(
            numbered_placeholders("SELECT '?' AS q, \"a?\" FROM t WHERE a = ? AND b > ?"),
            "SELECT '?' AS q, \"a?\" FROM t WHERE a = $1 AND b > $2"
        );
        assert!(FlightConfig::default().validate().is_ok());
        let bad = FlightConfig {
            addr: "nowhere".into(),
            ..FlightConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("flight.addr"));
    }
}
