/*-------------------------------------------------------------------------
 *
 * pgflex_guard.c
 *		Keeps a flexible server's administrator inside SQL.
 *
 * pgflex gives each server's administrator what Azure gives its
 * flexible-server admin: a NOSUPERUSER role with LOGIN CREATEDB CREATEROLE,
 * member of pg_monitor and pg_signal_backend, holding azure_pg_admin WITH
 * ADMIN OPTION. In PostgreSQL 15 CREATEROLE is close to superuser: such a
 * role may GRANT itself pg_execute_server_program and then run shell
 * commands as the server's OS user with COPY ... FROM PROGRAM, or take
 * pg_read/write_server_files and read the server's key or rewrite its
 * configuration. This module closes those doors with a ProcessUtility_hook
 * (chained to any previous one). Superusers are never restricted; every
 * check below applies only when !superuser().
 *
 * Loading: shared_preload_libraries only (there is no SQL script and no
 * CREATE EXTENSION); _PG_init refuses anything else, so a server configured
 * with it cannot run without it.
 *
 * Parameters:
 *	azure.extensions (sighup, list): the extensions non-superusers may
 *		create, update or drop; exact, case-sensitive names. Named after
 *		Azure's, so that `SHOW azure.extensions;` answers as Azure does.
 *	pgflex_guard.reserved_roles (postmaster, list): the service's roles.
 *
 * Refusals:
 *	- Roles. "Forbidden" roles are the reserved roles plus
 *	  pg_execute_server_program, pg_read_server_files and
 *	  pg_write_server_files. They may not be granted or revoked (GRANT,
 *	  REVOKE, CREATE ROLE ... IN ROLE, ALTER GROUP ... ADD USER), altered
 *	  (ALTER ROLE, incl. ... SET), dropped or renamed; a reserved role may
 *	  not be made a member of, or removed from, any role. Exception:
 *	  azure_pg_admin may be granted or revoked by a role that holds it WITH
 *	  ADMIN OPTION (the administrator). New roles may not take a reserved
 *	  name or a name starting with "pgflex_" or "azure_".
 *	- COPY to or from a program or a server file, whatever the role's
 *	  memberships (defence in depth: nobody should hold those roles).
 *	- LOAD, ALTER SYSTEM, CREATE LANGUAGE (with a handler; the short form
 *	  is CREATE EXTENSION), and ALTER ROLE/DATABASE ... SET of
 *	  local_preload_libraries or session_preload_libraries.
 *	- CREATE SCHEMA (or ALTER SCHEMA ... RENAME TO) with a reserved name:
 *	  it would come first in that role's search_path ("$user").
 *	- CREATE/ALTER/DROP EXTENSION of anything not in azure.extensions or in
 *	  the compiled-in deny list below, and ALTER EXTENSION ... SET SCHEMA,
 *	  with Azure's own messages.
 *
 * Extensions: an allow-listed extension whose control file says
 * "trusted = true" is left to PostgreSQL's trusted-extension mechanism.
 * Any other allow-listed extension (and, for ALTER and DROP, a trusted one
 * a superuser owns, as CASCADE leaves them) is "privileged": members of
 * azure_pg_admin create, update and drop it with the bootstrap superuser's
 * rights, as supautils' privileged extensions do, with the target schema
 * pinned into the statement. For the foreign-data wrappers among them
 * azure_pg_admin is granted USAGE so the administrator can create servers
 * (postgres_fdw and dblink still demand a password for non-superusers).
 * Every CREATE EXTENSION needs CREATE on the database and on the target
 * schema (PostgreSQL 15 checks only the former, so a trusted extension
 * could otherwise go into pg_catalog). Which extensions are safe to list
 * is decided where the list is written (internal/postgres/configuration.go).
 *
 * Not covered, because no utility statement is involved:
 * local_preload_libraries given in a connection's startup packet (it only
 * loads from $libdir/plugins, which Debian leaves empty), and functions,
 * whose EXECUTE privileges PostgreSQL itself keeps from non-superusers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "storage/fd.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/varlena.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Azure's group of administrators: may use privileged extensions. */
#define ADMIN_GROUP "azure_pg_admin"

/* Predefined roles that reach the server's files and programs. */
static const char *const protected_roles[] = {
	"pg_execute_server_program",
	"pg_read_server_files",
	"pg_write_server_files",
};

/*
 * Extensions never allowed to non-superusers, even if listed: they read or
 * write server files, run untrusted code, or bypass data integrity. Some
 * are modules without a control file today; listed in case one appears.
 */
static const char *const denied_extensions[] = {
	"adminpack", "file_fdw", "plperlu", "plpython3u", "plpythonu",
	"plpython2u", "pltclu", "pg_surgery", "basebackup_to_shell",
	"basic_archive", "sepgsql", "old_snapshot",
};

/* Foreign-data wrappers created by privileged extensions. */
static const struct
{
	const char *extension;
	const char *fdw;
}			extension_fdws[] = {
	{"postgres_fdw", "postgres_fdw"},
	{"dblink", "dblink_fdw"},
};

static char *allowed_extensions = NULL; /* azure.extensions */
static char *reserved_roles = NULL; /* pgflex_guard.reserved_roles */

static ProcessUtility_hook_type prev_utility_hook = NULL;

/* check hook: the value must be a list SplitGUCList can read. */
static bool
check_name_list(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval);
	List	   *names;
	bool		ok = SplitGUCList(raw, ',', &names);

	if (!ok)
		GUC_check_errdetail("List syntax is invalid.");
	list_free(names);
	pfree(raw);
	return ok;
}

/* Whether name is an element of the comma-separated list (exact match). */
static bool
in_list(const char *name, const char *list)
{
	char	   *raw;
	List	   *names;
	ListCell   *lc;
	bool		found = false;

	if (name == NULL || list == NULL)
		return false;
	raw = pstrdup(list);
	/* The check hook rejected bad syntax; fail closed all the same. */
	if (!SplitGUCList(raw, ',', &names))
		elog(ERROR, "pgflex_guard: invalid list \"%s\"", list);
	foreach(lc, names)
	{
		if (strcmp((const char *) lfirst(lc), name) == 0)
		{
			found = true;
			break;
		}
	}
	list_free(names);
	pfree(raw);
	return found;
}

static bool
is_reserved_role(const char *name)
{
	return in_list(name, reserved_roles);
}

static bool
is_protected_role(const char *name)
{
	for (int i = 0; i < lengthof(protected_roles); i++)
		if (strcmp(name, protected_roles[i]) == 0)
			return true;
	return false;
}

static bool
is_forbidden_role(const char *name)
{
	return is_reserved_role(name) || is_protected_role(name);
}

/* Names CREATE ROLE and ALTER ROLE ... RENAME TO may not use. */
static bool
is_reserved_name(const char *name)
{
	return is_reserved_role(name) ||
		strncmp(name, "pgflex_", strlen("pgflex_")) == 0 ||
		strncmp(name, "azure_", strlen("azure_")) == 0;
}

/* Whether the current user holds azure_pg_admin WITH ADMIN OPTION. */
static bool
holds_admin_group_admin_option(void)
{
	Oid			group = get_role_oid(ADMIN_GROUP, true);

	return OidIsValid(group) && is_admin_of_role(GetUserId(), group);
}

/*
 * The role a RoleSpec names, without looking it up: a missing role is
 * PostgreSQL's error to raise, and PUBLIC is just "public".
 */
static const char *
rolespec_name(const RoleSpec *spec)
{
	switch (spec->roletype)
	{
		case ROLESPEC_CSTRING:
			return spec->rolename;
		case ROLESPEC_CURRENT_ROLE:
		case ROLESPEC_CURRENT_USER:
			return GetUserNameFromId(GetUserId(), false);
		case ROLESPEC_SESSION_USER:
			return GetUserNameFromId(GetSessionUserId(), false);
		case ROLESPEC_PUBLIC:
			return "public";
	}
	return "";
}

/*
 * Refuses to "action" (grant, revoke, alter, drop, rename; a constant)
 * role, because of the forbidden role why.
 */
static void
deny_role(const char *action, const char *role, const char *why)
{
	if (is_protected_role(why))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s role \"%s\"", action, role),
				 errdetail("Role \"%s\" gives access to the server's files and programs, which the service does not allow.", why),
				 errhint("Use COPY ... FROM STDIN or TO STDOUT (psql's \\copy) to move data.")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s role \"%s\"", action, role),
			 errdetail("Role \"%s\" is reserved by the service.", why),
			 errhint("Roles reserved by the service cannot be granted, altered, dropped or renamed; use a role of your own.")));
}

/*
 * Checks that role may be granted or revoked ("action") by the current
 * user: not forbidden, unless it is azure_pg_admin and the user holds it
 * WITH ADMIN OPTION (PostgreSQL's own checks follow).
 */
static void
check_grantable(const char *action, const char *role)
{
	if (strcmp(role, ADMIN_GROUP) == 0)
	{
		if (!holds_admin_group_admin_option())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to %s role \"%s\"", action, role),
					 errdetail("Only roles that hold \"%s\" WITH ADMIN OPTION may grant or revoke it.", ADMIN_GROUP),
					 errhint("Ask the server administrator to grant it.")));
		return;
	}
	if (is_forbidden_role(role))
		deny_role(action, role, role);
}

/* Checks that no member in a list of RoleSpecs is a reserved role. */
static void
check_members(const char *action, const char *role, List *members)
{
	ListCell   *lc;

	foreach(lc, members)
	{
		const char *member = rolespec_name(lfirst_node(RoleSpec, lc));

		if (is_reserved_role(member))
			deny_role(action, role, member);
	}
}

static void
check_grant_role(const GrantRoleStmt *stmt)
{
	const char *action = stmt->is_grant ? "grant" : "revoke";
	const char *first = NULL;
	ListCell   *lc;

	/* PostgreSQL 15 parses the granted roles as AccessPriv nodes. */
	foreach(lc, stmt->granted_roles)
	{
		const AccessPriv *priv = lfirst_node(AccessPriv, lc);

		if (priv->priv_name == NULL)
			continue;
		check_grantable(action, priv->priv_name);
		if (first == NULL)
			first = priv->priv_name;
	}
	if (first != NULL)
		check_members(action, first, stmt->grantee_roles);
}

static void
check_reserved_name(const char *name)
{
	if (is_reserved_name(name))
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("role name \"%s\" is reserved", name),
				 errdetail("Role names starting with \"pgflex_\" or \"azure_\", and the service's roles, are reserved by the service."),
				 errhint("Choose another name.")));
}

static void
check_create_role(const CreateRoleStmt *stmt)
{
	ListCell   *lc;

	check_reserved_name(stmt->role);
	foreach(lc, stmt->options)
	{
		DefElem    *opt = lfirst_node(DefElem, lc);
		ListCell   *rc;

		if (strcmp(opt->defname, "addroleto") == 0)
		{
			/* IN ROLE/IN GROUP: the new role becomes a member of these. */
			foreach(rc, (List *) opt->arg)
				check_grantable("grant", rolespec_name(lfirst_node(RoleSpec, rc)));
		}
		else if (strcmp(opt->defname, "rolemembers") == 0 ||
				 strcmp(opt->defname, "adminmembers") == 0)
		{
			/* ROLE/USER/ADMIN: these become members of the new role. */
			check_members("grant", stmt->role, (List *) opt->arg);
		}
	}
}

static void
check_alter_role(const AlterRoleStmt *stmt)
{
	const char *role = rolespec_name(stmt->role);
	ListCell   *lc;

	/* Covers ALTER GROUP pg_read_server_files ADD USER ... too. */
	if (is_forbidden_role(role))
		deny_role("alter", role, role);
	/* ALTER GROUP g ADD/DROP USER: members join or leave g. */
	foreach(lc, stmt->options)
	{
		DefElem    *opt = lfirst_node(DefElem, lc);

		if (strcmp(opt->defname, "rolemembers") == 0)
			check_members(stmt->action < 0 ? "revoke" : "grant", role, (List *) opt->arg);
	}
}

/*
 * ALTER ROLE/DATABASE ... SET of a preload list would load libraries into
 * later sessions. RESET stays allowed: it only undoes.
 */
static void
check_set_stmt(const VariableSetStmt *set)
{
	if (set == NULL || set->name == NULL ||
		set->kind == VAR_RESET || set->kind == VAR_RESET_ALL)
		return;
	/* GUC names are case-insensitive. */
	if (pg_strcasecmp(set->name, "local_preload_libraries") == 0 ||
		pg_strcasecmp(set->name, "session_preload_libraries") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set parameter \"%s\"", set->name),
				 errdetail("Only the service loads libraries into the server."),
				 errhint("Use CREATE EXTENSION with an allow-listed extension; to see the list, run: SHOW azure.extensions;")));
}

static void
check_drop_role(const DropRoleStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->roles)
	{
		const char *role = rolespec_name(lfirst_node(RoleSpec, lc));

		if (is_forbidden_role(role))
			deny_role("drop", role, role);
	}
}

static void
check_rename_role(const RenameStmt *stmt)
{
	if (stmt->subname != NULL && is_forbidden_role(stmt->subname))
		deny_role("rename", stmt->subname, stmt->subname);
	if (stmt->newname != NULL)
		check_reserved_name(stmt->newname);
}

/*
 * A schema named after a service role comes first in that role's
 * search_path ("$user"), so that its sessions would run the owner's
 * functions and operators where they match better than pg_catalog's.
 */
static void
check_schema_name(const char *name)
{
	if (name != NULL && is_reserved_name(name))
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("schema name \"%s\" is reserved", name),
				 errdetail("Schema names starting with \"pgflex_\" or \"azure_\", and the service's role names, are reserved by the service."),
				 errhint("Choose another name.")));
}

/* PostgreSQL's own texts (commands/copy.c), whatever the memberships. */
static void
check_copy(const CopyStmt *stmt)
{
	if (stmt->filename == NULL)
		return;					/* STDIN/STDOUT */
	if (stmt->is_program)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser or have privileges of the pg_execute_server_program role to COPY to or from an external program"),
				 errhint("Anyone can COPY to stdout or from stdin. "
						 "psql's \\copy command also works for anyone.")));
	if (stmt->is_from)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser or have privileges of the pg_read_server_files role to COPY from a file"),
				 errhint("Anyone can COPY to stdout or from stdin. "
						 "psql's \\copy command also works for anyone.")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("must be superuser or have privileges of the pg_write_server_files role to COPY to a file"),
			 errhint("Anyone can COPY to stdout or from stdin. "
					 "psql's \\copy command also works for anyone.")));
}

/*
 * Reads the parts of an extension's primary control file that matter
 * here: whether it is trusted, what it requires (a list of names) and the
 * schema it must go to (or NULL). Returns false when there is no such
 * file: PostgreSQL's error then.
 */
static bool
read_control_file(const char *name, bool *trusted, List **requires,
				  char **schema)
{
	char		sharepath[MAXPGPATH];
	char		path[MAXPGPATH];
	FILE	   *file;
	ConfigVariable *head = NULL;
	ConfigVariable *tail = NULL;

	*trusted = false;
	*requires = NIL;
	*schema = NULL;
	/* PostgreSQL refuses such names itself; never build a path from them. */
	if (name[0] == '\0' || strchr(name, '/') != NULL || strchr(name, '\\') != NULL)
		return false;
	get_share_path(my_exec_path, sharepath);
	snprintf(path, sizeof(path), "%s/extension/%s.control", sharepath, name);
	file = AllocateFile(path, "r");
	if (file == NULL)
		return false;
	/* The parser extension.c uses; an error aborts and frees the file. */
	(void) ParseConfigFp(file, path, 0, ERROR, &head, &tail);
	FreeFile(file);
	for (ConfigVariable *item = head; item != NULL; item = item->next)
	{
		if (strcmp(item->name, "trusted") == 0)
		{
			if (!parse_bool(item->value, trusted))
				*trusted = false;
		}
		else if (strcmp(item->name, "requires") == 0)
		{
			/* As extension.c reads it. */
			if (!SplitIdentifierString(pstrdup(item->value), ',', requires))
				*requires = NIL;
		}
		else if (strcmp(item->name, "schema") == 0)
			*schema = pstrdup(item->value);
	}
	FreeConfigVariables(head);
	return true;
}

/* The owner of an installed extension, or InvalidOid. */
static Oid
extension_owner(const char *name)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(name));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return owner;
}

static bool
is_denied_extension(const char *name)
{
	for (int i = 0; i < lengthof(denied_extensions); i++)
		if (strcmp(name, denied_extensions[i]) == 0)
			return true;
	return false;
}

/*
 * Refuses the extension unless the allow-list lets the current user have
 * it; returns whether the command needs the bootstrap superuser, that is
 * whether the extension is "privileged": allow-listed and not trusted, or
 * (existing: for ALTER and DROP) installed and owned by a superuser, as
 * CREATE ... CASCADE of a privileged extension leaves its trusted
 * requirements. command is "CREATE EXTENSION", "ALTER EXTENSION" or "DROP
 * EXTENSION". With cascade, the extensions CREATE ... CASCADE would create
 * along (which PostgreSQL does without coming back through this hook) are
 * checked the same way.
 */
static bool
check_extension(const char *name, const char *command, bool cascade,
				bool existing, int depth)
{
	bool		trusted;
	List	   *requires;
	char	   *schema;
	bool		privileged;
	ListCell   *lc;

	/* Preinstalled and trusted; PostgreSQL decides (owner checks etc.). */
	if (strcmp(name, "plpgsql") == 0)
		return false;
	if (is_denied_extension(name) || !in_list(name, allowed_extensions))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("extension \"%s\" is not allow-listed for \"%s\" users in Azure Database for PostgreSQL", name, ADMIN_GROUP),
				 errhint("to see the list of allowed extensions, please run: SHOW azure.extensions;")));
	if (!read_control_file(name, &trusted, &requires, &schema))
		return false;
	privileged = !trusted;
	if (!privileged && existing)
	{
		Oid			owner = extension_owner(name);

		privileged = OidIsValid(owner) && superuser_arg(owner);
	}
	if (cascade)
	{
		/* PostgreSQL refuses cycles; this only bounds the recursion. */
		if (depth >= 10)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("extension \"%s\" requires extensions nested too deeply", name)));
		foreach(lc, requires)
		{
			const char *req = (const char *) lfirst(lc);

			if (!OidIsValid(get_extension_oid(req, true)))
				privileged |= check_extension(req, command, cascade, false, depth + 1);
		}
	}
	if (privileged && depth == 0)
	{
		Oid			group = get_role_oid(ADMIN_GROUP, true);

		if (!OidIsValid(group) || !is_member_of_role(GetUserId(), group))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("Only members of \"%s\" are allowed to use %s", ADMIN_GROUP, command),
					 errhint("Ask the server administrator to grant you \"%s\".", ADMIN_GROUP)));
	}
	return privileged;
}

/* The DefElem named name in options, or NULL. */
static DefElem *
find_option(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
		if (strcmp(lfirst_node(DefElem, lc)->defname, name) == 0)
			return lfirst_node(DefElem, lc);
	return NULL;
}

/*
 * CREATE EXTENSION by a non-superuser: CREATE on the database (as
 * PostgreSQL checks for trusted extensions) and on the schema the
 * extension goes to (which PostgreSQL 15 does not check: a trusted
 * extension's objects could land in pg_catalog, ahead of every session's
 * search_path). For a privileged extension (pin), when the statement names
 * no schema, the one the user's search_path gives is pinned into a copy of
 * it: the superuser's search_path may resolve otherwise ("$user", schemas
 * the user may not use). Returns the statement to run.
 */
static PlannedStmt *
check_extension_target(PlannedStmt *pstmt, bool pin)
{
	CreateExtensionStmt *stmt = castNode(CreateExtensionStmt, pstmt->utilityStmt);
	DefElem    *opt = find_option(stmt->options, "schema");
	char	   *schema = opt != NULL ? defGetString(opt) : NULL;
	bool		trusted;
	List	   *requires;
	char	   *control_schema;
	Oid			nsp;
	PlannedStmt *pinned = pstmt;

	if (pg_database_aclcheck(MyDatabaseId, GetUserId(), ACL_CREATE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to create extension \"%s\"", stmt->extname),
				 errhint("Must have CREATE privilege on current database to create this extension.")));
	if (!read_control_file(stmt->extname, &trusted, &requires, &control_schema))
		return pstmt;
	if (schema == NULL && control_schema != NULL)
		schema = control_schema;
	if (schema == NULL)
	{
		List	   *path = fetch_search_path(false);

		if (path == NIL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_SCHEMA),
					 errmsg("no schema has been selected to create in")));
		nsp = linitial_oid(path);
		schema = get_namespace_name(nsp);
		if (pin)
		{
			pinned = copyObject(pstmt);
			stmt = castNode(CreateExtensionStmt, pinned->utilityStmt);
			stmt->options = lappend(stmt->options,
									makeDefElem("schema", (Node *) makeString(schema), -1));
		}
	}
	else
	{
		nsp = get_namespace_oid(schema, true);
		if (!OidIsValid(nsp))
			return pstmt;		/* PostgreSQL creates or refuses it */
	}
	if (pg_namespace_aclcheck(nsp, GetUserId(), ACL_CREATE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_SCHEMA, schema);
	return pinned;
}

/*
 * DROP EXTENSION a, b: all names must be allow-listed. The bootstrap
 * superuser drops them if one is privileged and each of the others is the
 * user's own or not installed; otherwise the statement runs as the user
 * and PostgreSQL's owner checks apply, so that elevation never drops a
 * trusted extension another role owns (nor plpgsql).
 */
static bool
check_drop_extensions(const DropStmt *stmt)
{
	ListCell   *lc;
	bool		any_privileged = false;
	bool		others_own = true;

	foreach(lc, stmt->objects)
	{
		const char *name = strVal(lfirst(lc));

		if (check_extension(name, "DROP EXTENSION", false, true, 0))
			any_privileged = true;
		else
		{
			Oid			owner = extension_owner(name);

			if (OidIsValid(owner) && owner != GetUserId())
				others_own = false;
		}
	}
	return any_privileged && others_own;
}

static void
call_next(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
		  ProcessUtilityContext context, ParamListInfo params,
		  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_utility_hook)
		prev_utility_hook(pstmt, queryString, readOnlyTree, context, params,
						  queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * After a privileged CREATE EXTENSION: a foreign-data wrapper it created
 * belongs to the bootstrap superuser, so grant azure_pg_admin USAGE on it
 * (WITH GRANT OPTION, so the administrator can pass it on).
 */
static void
grant_fdw_usage(const char *extname)
{
	for (int i = 0; i < lengthof(extension_fdws); i++)
	{
		GrantStmt  *grant;
		AccessPriv *usage;
		RoleSpec   *grantee;

		if (strcmp(extname, extension_fdws[i].extension) != 0)
			continue;
		CommandCounterIncrement();
		if (!OidIsValid(get_foreign_data_wrapper_oid(extension_fdws[i].fdw, true)) ||
			!OidIsValid(get_role_oid(ADMIN_GROUP, true)))
			return;
		usage = makeNode(AccessPriv);
		usage->priv_name = pstrdup("usage");
		grantee = makeNode(RoleSpec);
		grantee->roletype = ROLESPEC_CSTRING;
		grantee->rolename = pstrdup(ADMIN_GROUP);
		grantee->location = -1;
		grant = makeNode(GrantStmt);
		grant->is_grant = true;
		grant->targtype = ACL_TARGET_OBJECT;
		grant->objtype = OBJECT_FDW;
		grant->objects = list_make1(makeString(pstrdup(extension_fdws[i].fdw)));
		grant->privileges = list_make1(usage);
		grant->grantees = list_make1(grantee);
		grant->grant_option = true;
		grant->behavior = DROP_RESTRICT;
		ExecuteGrantStmt(grant);
		return;
	}
}

/*
 * Runs the statement as the bootstrap superuser, like PostgreSQL does for
 * a trusted extension's script. SECURITY_LOCAL_USERID_CHANGE keeps the
 * extension's script from SET ROLE-ing elsewhere; the user is restored
 * however the statement ends.
 */
static void
run_as_bootstrap_superuser(PlannedStmt *pstmt, const char *queryString,
						   bool readOnlyTree, ProcessUtilityContext context,
						   ParamListInfo params, QueryEnvironment *queryEnv,
						   DestReceiver *dest, QueryCompletion *qc)
{
	Oid			saved_userid;
	int			saved_sec_context;

	GetUserIdAndSecContext(&saved_userid, &saved_sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		call_next(pstmt, queryString, readOnlyTree, context, params, queryEnv,
				  dest, qc);
		if (IsA(pstmt->utilityStmt, CreateExtensionStmt))
			grant_fdw_usage(castNode(CreateExtensionStmt, pstmt->utilityStmt)->extname);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_userid, saved_sec_context);
	}
	PG_END_TRY();
}

static void
guard_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					 bool readOnlyTree, ProcessUtilityContext context,
					 ParamListInfo params, QueryEnvironment *queryEnv,
					 DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	bool		elevate = false;

	if (!superuser())
	{
		switch (nodeTag(stmt))
		{
			case T_GrantRoleStmt:
				check_grant_role((GrantRoleStmt *) stmt);
				break;
			case T_CreateRoleStmt:
				check_create_role((CreateRoleStmt *) stmt);
				break;
			case T_AlterRoleStmt:
				check_alter_role((AlterRoleStmt *) stmt);
				break;
			case T_AlterRoleSetStmt:
				{
					AlterRoleSetStmt *s = (AlterRoleSetStmt *) stmt;

					/* role is NULL for ALTER ROLE ALL (superuser only). */
					if (s->role != NULL)
					{
						const char *role = rolespec_name(s->role);

						if (is_forbidden_role(role))
							deny_role("alter", role, role);
					}
					check_set_stmt(s->setstmt);
					break;
				}
			case T_AlterDatabaseSetStmt:
				check_set_stmt(((AlterDatabaseSetStmt *) stmt)->setstmt);
				break;
			case T_DropRoleStmt:
				check_drop_role((DropRoleStmt *) stmt);
				break;
			case T_RenameStmt:
				if (((RenameStmt *) stmt)->renameType == OBJECT_ROLE)
					check_rename_role((RenameStmt *) stmt);
				else if (((RenameStmt *) stmt)->renameType == OBJECT_SCHEMA)
					check_schema_name(((RenameStmt *) stmt)->newname);
				break;
			case T_CreateSchemaStmt:
				check_schema_name(((CreateSchemaStmt *) stmt)->schemaname);
				break;
			case T_CopyStmt:
				check_copy((CopyStmt *) stmt);
				break;
			case T_LoadStmt:
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to load library \"%s\"",
								((LoadStmt *) stmt)->filename),
						 errdetail("Only the service loads libraries into the server."),
						 errhint("Use CREATE EXTENSION with an allow-listed extension; to see the list, run: SHOW azure.extensions;")));
				break;
			case T_AlterSystemStmt:
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to run ALTER SYSTEM"),
						 errdetail("Server parameters are managed by the service."),
						 errhint("Change server parameters through the service, or use ALTER ROLE ... SET or ALTER DATABASE ... SET.")));
				break;
			case T_CreatePLangStmt:
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to create language \"%s\"",
								((CreatePLangStmt *) stmt)->plname),
						 errhint("Use CREATE EXTENSION with an allow-listed language; to see the list, run: SHOW azure.extensions;")));
				break;
			case T_CreateExtensionStmt:
				{
					CreateExtensionStmt *s = (CreateExtensionStmt *) stmt;

					elevate = check_extension(s->extname, "CREATE EXTENSION",
											  find_option(s->options, "cascade") != NULL,
											  false, 0);
					if (strcmp(s->extname, "plpgsql") != 0)
						pstmt = check_extension_target(pstmt, elevate);
					break;
				}
			case T_AlterExtensionStmt:
				elevate = check_extension(((AlterExtensionStmt *) stmt)->extname,
										  "ALTER EXTENSION", false, true, 0);
				break;
			case T_DropStmt:
				if (((DropStmt *) stmt)->removeType == OBJECT_EXTENSION)
					elevate = check_drop_extensions((DropStmt *) stmt);
				break;
			case T_AlterObjectSchemaStmt:
				if (((AlterObjectSchemaStmt *) stmt)->objectType == OBJECT_EXTENSION)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("SET SCHEMA clause for ALTER EXTENSION is not supported."),
							 errhint("Drop the extension and create it again in the schema you want.")));
				break;
			default:
				break;
		}
	}
	if (elevate)
		run_as_bootstrap_superuser(pstmt, queryString, readOnlyTree, context,
								   params, queryEnv, dest, qc);
	else
		call_next(pstmt, queryString, readOnlyTree, context, params, queryEnv,
				  dest, qc);
}

void
_PG_init(void)
{
	/*
	 * Loaded later (LOAD, session_preload_libraries), the hook would be
	 * missing from other sessions: refuse, so a misconfiguration is loud.
	 */
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pgflex_guard must be loaded via shared_preload_libraries")));

	DefineCustomStringVariable("azure.extensions",
							   "Extensions non-superusers may create, update and drop.",
							   "A comma-separated list of exact extension names.",
							   &allowed_extensions,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   check_name_list, NULL, NULL);
	DefineCustomStringVariable("pgflex_guard.reserved_roles",
							   "The service's roles, which non-superusers may not grant, alter, drop or rename.",
							   "A comma-separated list of exact role names.",
							   &reserved_roles,
							   "",
							   PGC_POSTMASTER,
							   GUC_LIST_INPUT,
							   check_name_list, NULL, NULL);
	MarkGUCPrefixReserved("azure");
	MarkGUCPrefixReserved("pgflex_guard");

	prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = guard_ProcessUtility;
}
