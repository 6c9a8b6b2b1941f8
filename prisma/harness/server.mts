// The Prisma side of the cross-ORM tests (tests/prisma/test_cross_orm.py): the generated
// Prisma Client on the database named by DATABASE_URL, driven over stdin/stdout, one JSON
// request per line and one JSON answer per line, in order.
//
//   {"id": 1, "model": "customer", "method": "findMany", "args": {...}, "organization": "org_1"}
//   {"id": 2, "raw": "SELECT id FROM customers WHERE id = $1", "params": ["cus_1"], "organization": "org_1"}
//   -> {"id": 1, "ok": true, "result": ...} | {"id": 1, "ok": false, "error": {"name", "code", "message"}}
//
// With `organization` the request runs on forOrganization(prisma, organization)
// (prisma/tenancy.ts), the client a tenant's TypeScript service uses. Values JSON cannot
// carry are tagged both ways: {"$decimal": "1.5"}, {"$bigint": "9007199254740993"},
// {"$date": "2026-01-01T00:00:00.123Z"}, and {"$null": "DbNull" | "JsonNull" | "AnyNull"}
// for Prisma's Json null markers. A Json field's own value is passed as it is, so these
// keys must not appear in test Json.

import { createInterface } from 'node:readline'

import { PrismaPg } from '@prisma/adapter-pg'

import { Prisma, PrismaClient } from '../generated/client/client.ts'
import { forOrganization, type TenantClient } from '../tenancy.ts'

type Request = {
  id: number
  model?: string
  method?: string
  args?: unknown
  raw?: string
  params?: unknown[]
  organization?: string
}

const NULLS = { DbNull: Prisma.DbNull, JsonNull: Prisma.JsonNull, AnyNull: Prisma.AnyNull } as const

function decode(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(decode)
  if (value === null || typeof value !== 'object') return value
  const tagged = value as Record<string, unknown>
  const keys = Object.keys(tagged)
  if (keys.length === 1) {
    const [key] = keys
    const inner = tagged[key]
    if (key === '$decimal') return new Prisma.Decimal(inner as string)
    if (key === '$bigint') return BigInt(inner as string)
    if (key === '$date') return new Date(inner as string)
    if (key === '$null') return NULLS[inner as keyof typeof NULLS]
  }
  return Object.fromEntries(keys.map((key) => [key, decode(tagged[key])]))
}

function encode(value: unknown): unknown {
  if (typeof value === 'bigint') return { $bigint: value.toString() }
  if (value instanceof Date) return { $date: value.toISOString() }
  if (Prisma.Decimal.isDecimal(value)) return { $decimal: (value as Prisma.Decimal).toFixed() }
  if (Array.isArray(value)) return value.map(encode)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, encode(inner)]))
}

function describe(error: unknown): { name: string; code: string | null; message: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    return { name: error.name, code: typeof code === 'string' ? code : null, message: error.message }
  }
  return { name: 'Error', code: null, message: String(error) }
}

const connectionString = (process.env.DATABASE_URL ?? '').replace(/^postgresql\+\w+:/, 'postgresql:')
if (!connectionString) throw new Error('DATABASE_URL is not set')
const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString }) })
const tenants = new Map<string, TenantClient>()

function clientFor(organization: string | undefined): PrismaClient | TenantClient {
  if (organization === undefined) return prisma
  let tenant = tenants.get(organization)
  if (tenant === undefined) {
    tenant = forOrganization(prisma, organization)
    tenants.set(organization, tenant)
  }
  return tenant
}

async function answer(request: Request): Promise<unknown> {
  const client = clientFor(request.organization) as unknown as Record<string, unknown>
  if (request.raw !== undefined) {
    const params = (request.params ?? []).map(decode)
    return (client.$queryRawUnsafe as (sql: string, ...values: unknown[]) => Promise<unknown>)(request.raw, ...params)
  }
  const delegate = client[request.model ?? ''] as Record<string, (args: unknown) => Promise<unknown>> | undefined
  const method = delegate?.[request.method ?? '']
  if (typeof method !== 'function') throw new Error(`no ${request.model}.${request.method} on the Prisma Client`)
  return method.call(delegate, decode(request.args ?? {}))
}

// requests are answered one at a time, in order: the tests read answers in that order
let queue: Promise<void> = Promise.resolve()
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
lines.on('line', (line) => {
  queue = queue.then(async () => {
    const request = JSON.parse(line) as Request
    let reply: object
    try {
      reply = { id: request.id, ok: true, result: encode(await answer(request)) }
    } catch (error) {
      reply = { id: request.id, ok: false, error: describe(error) }
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`)
  })
})
lines.on('close', () => {
  void queue.then(() => prisma.$disconnect())
})
process.stdout.write(`${JSON.stringify({ ready: true })}\n`)
