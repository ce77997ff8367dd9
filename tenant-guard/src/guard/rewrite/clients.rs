//! Two-level tenancy and role gates: the client predicate, the guard's
//! extra parameters (granted clients, active client) and the role gates a
//! statement touches.
//!
//! The granted clients travel as **one** bound parameter, so the rewritten
//! text does not depend on how many clients a session holds and stays
//! cacheable: PostgreSQL binds a `uuid[]` and the predicate is
//! `<ref>.<client column> = ANY($k)`; SQLite has no arrays, so it binds a
//! JSON array of the hyphenated ids as text and the predicate is
//! `<ref>.<client column> IN (SELECT value FROM json_each(?k))` (SQLite's
//! built-in JSON1; `IN (?a, ?b, ..)` would make the text depend on the grant
//! count). A session with no grants binds an empty array: no row matches.

use super::*;

impl<'r> Rewriter<'r> {
    /// The placeholder of the next guard parameter, recording its kind.
    fn next_placeholder(&mut self, kind: GuardParam) -> Expr {
        self.extra.push(kind);
        let index = self.user_params + 1 + self.extra.len();
        Expr::value(Value::Placeholder(match self.dialect {
            Dialect::Postgres => format!("${index}"),
            Dialect::Sqlite => format!("?{index}"),
        }))
    }

    /// The active-client placeholder (allocated on first use).
    pub(super) fn active_client(&mut self) -> Expr {
        match &self.active_client {
            Some(e) => e.clone(),
            None => {
                let e = self.next_placeholder(GuardParam::ActiveClient);
                self.active_client = Some(e.clone());
                e
            }
        }
    }

    /// `<qualifier>.<client column> = ANY(<clients>)` (PostgreSQL) or
    /// `.. IN (SELECT value FROM json_each(<clients>))` (SQLite).
    fn client_predicate(&mut self, qualifier: &[Ident], column: &str) -> Result<Expr, GuardError> {
        let mut path = qualifier.to_vec();
        path.push(Self::column_ident(column));
        let left = Box::new(Expr::CompoundIdentifier(path));
        let template = match &self.clients {
            Some(t) => t.clone(),
            None => {
                let placeholder = self.next_placeholder(GuardParam::Clients);
                let t = match self.dialect {
                    Dialect::Postgres => Expr::AnyOp {
                        left: Box::new(Expr::value(Value::Boolean(true))),
                        compare_op: BinaryOperator::Eq,
                        right: Box::new(placeholder),
                        is_some: false,
                    },
                    Dialect::Sqlite => {
                        // Parsed (once per rewrite) rather than assembled, so
                        // the tree is exactly what the printed text parses
                        // back to.
                        let text = format!("x IN (SELECT value FROM json_each({placeholder}))");
                        Parser::new(&SQLiteDialect {})
                            .try_with_sql(&text)
                            .and_then(|mut p| p.parse_expr())
                            .map_err(|e| GuardError::Parse(e.to_string()))?
                    }
                };
                self.clients = Some(t.clone());
                t
            }
        };
        Ok(match template {
            Expr::AnyOp {
                compare_op,
                right,
                is_some,
                ..
            } => Expr::AnyOp {
                left,
                compare_op,
                right,
                is_some,
            },
            Expr::In {
                target,
                negated,
                global,
                ..
            } => Expr::In {
                expr: left,
                target,
                negated,
                global,
            },
            _ => return Err(unsupported("client predicate")),
        })
    }

    /// The predicates for a reference to a tenant table: the tenant one and,
    /// for a client-scoped table in a session that is not organisation-wide,
    /// the client one. Records the table's role gates for `write` access and
    /// counts the predicates against [`super::order::MAX_TENANT_PREDICATES`].
    pub(super) fn scope_predicates(
        &mut self,
        table: TenantRef<'r>,
        qualifier: &[Ident],
        write: bool,
    ) -> Result<Vec<Expr>, GuardError> {
        self.touch(table.key, write);
        let mut preds = vec![self.predicate(qualifier, table.column)];
        if let Some(client) = table.client
            && !self.org_wide
        {
            preds.push(self.client_predicate(qualifier, client)?);
        }
        self.count_predicates(preds)
    }

    /// Records the role gates of the table `key` for reading or writing.
    pub(super) fn touch(&mut self, key: &'r str, write: bool) {
        let registry: &'r TableRegistry = self.registry;
        if !registry.has_role_gates() {
            return;
        }
        for gate in registry.role_gates(key) {
            let roles = gate.roles(write);
            if !self
                .gates
                .iter()
                .any(|(k, r)| *k == key && std::ptr::eq(*r, roles))
            {
                self.gates.push((key, roles));
            }
        }
    }

    /// The recorded gates as owned data for the cached statement.
    pub(super) fn gates_owned(&self) -> Vec<(String, Vec<String>)> {
        self.gates
            .iter()
            .map(|(k, roles)| ((*k).to_owned(), roles.iter().cloned().collect()))
            .collect()
    }
}
