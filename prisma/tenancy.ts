// A Prisma Client scoped to one organization: the TypeScript side of the tenancy that
// billing/db/sessions.py gives the Python side (DESIGN.md, "Tenancy").
//
// Two fences, as in Python:
// - every model query is filtered to the organization (its `where` gets
//   `AND organizationId = <org>`, created rows get the organization or are refused), so a
//   query cannot reach another tenant's rows by forgetting the filter;
// - every query, raw SQL included, runs in a transaction as the role `billing_tenant` with
//   `billing.organization_id` set, the row-level security policies of the migrations
//   (7c3e5a1d9b20, b41d7e9c2a63), so even a hand-written `where` or `$queryRaw` sees only
//   the organization's rows.
//
//   const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString }) })
//   const tenant = forOrganization(prisma, 'org_123')
//   await tenant.customer.findMany({ include: { paymentMethods: true } })
//
// The connecting role must be a member of `billing_tenant` (the migrations grant it to
// the role that runs them). Each query is a transaction of its own; an interactive
// `prisma.$transaction(async (tx) => ...)` on the base client is not scoped.

import { Prisma, type PrismaClient } from './generated/client/client.ts'

export const TENANT_ROLE = 'billing_tenant'

// the models that carry organizationId, from the generated client's field lists
const tenantOwnedModels = new Set(
  Object.values(Prisma.ModelName).filter((model) => {
    const fields = (Prisma as unknown as Record<string, Record<string, string> | undefined>)[
      `${model}ScalarFieldEnum`
    ]
    return fields !== undefined && 'organizationId' in fields
  }),
)

// the operations whose arguments carry a `where`, a `data` to create, or both
const FILTERED = new Set([
  'findUnique',
  'findUniqueOrThrow',
  'findFirst',
  'findFirstOrThrow',
  'findMany',
  'count',
  'aggregate',
  'groupBy',
  'update',
  'updateMany',
  'updateManyAndReturn',
  'delete',
  'deleteMany',
  'upsert',
])
const CREATING = new Set(['create', 'createMany', 'createManyAndReturn', 'upsert'])

type Args = Record<string, unknown>

export class TenantScopeError extends Error {
  override name = 'TenantScopeError'
}

/** The field that names a model's organization: `organizationId`, or the id of Organization. */
function tenantField(model: string): string | undefined {
  if (model === Prisma.ModelName.Organization) return 'id'
  return tenantOwnedModels.has(model as Prisma.ModelName) ? 'organizationId' : undefined
}

function scopedWhere(where: unknown, field: string, organizationId: string): Args {
  const given = (where ?? {}) as Args
  const and = given.AND === undefined ? [] : Array.isArray(given.AND) ? given.AND : [given.AND]
  return { ...given, AND: [...and, { [field]: organizationId }] }
}

function scopedData(data: unknown, field: string, organizationId: string): unknown {
  if (Array.isArray(data)) return data.map((row) => scopedData(row, field, organizationId))
  const row = { ...(data as Args) }
  if (row[field] !== undefined && row[field] !== organizationId) {
    throw new TenantScopeError(`a client scoped to ${organizationId} cannot write rows of ${String(row[field])}`)
  }
  // a relation-style create (`organization: { connect }`) names the organization itself
  if (field === 'organizationId' && 'organization' in row) return row
  if (field === 'id') return row // an organization's id is the organization: the check above holds
  return { ...row, [field]: organizationId }
}

/** The arguments of one model query, narrowed to the organization. */
export function scopeArguments(model: string, operation: string, args: Args, organizationId: string): Args {
  const field = tenantField(model)
  if (field === undefined) return args // shared data (exchange rates): the policies decide
  const scoped: Args = { ...args }
  if (FILTERED.has(operation)) scoped.where = scopedWhere(args.where, field, organizationId)
  if (CREATING.has(operation)) {
    const key = operation === 'upsert' ? 'create' : 'data'
    scoped[key] = scopedData(args[key], field, organizationId)
  }
  return scoped
}

export function forOrganization(prisma: PrismaClient, organizationId: string) {
  if (!organizationId) throw new TenantScopeError('a tenant client needs an organization id')
  const bind = () =>
    prisma.$executeRaw`SELECT set_config('role', ${TENANT_ROLE}, true), set_config('billing.organization_id', ${organizationId}, true)`
  return prisma.$extends({
    name: 'tenant',
    query: {
      async $allOperations({ model, operation, args, query }) {
        const scoped =
          model === undefined ? args : scopeArguments(model, operation, (args ?? {}) as Args, organizationId)
        const [, result] = await prisma.$transaction([bind(), query(scoped)])
        return result
      },
    },
  })
}

export type TenantClient = ReturnType<typeof forOrganization>
