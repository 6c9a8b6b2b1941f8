import { PrismaPg } from '@prisma/adapter-pg'
import { Prisma, PrismaClient } from './prisma/generated/client/client.ts'
import { forOrganization } from './prisma/tenancy.ts'

const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL }) })
const tenant = forOrganization(prisma, process.env.ORGANIZATION_ID!)

// customers without an address (SQL NULL, as Python's None), with their payment methods
const customers = await tenant.customer.findMany({
  where: { address: { equals: Prisma.DbNull } },
  include: { paymentMethods: true },
})
const products = await tenant.product.findMany({ include: { prices: true } })
// another organization's rows are not there, whatever the query says
const everyone = await tenant.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM customers`
console.log(JSON.stringify({
  customers: customers.map((c) => ({ id: c.id, paymentMethods: c.paymentMethods.map((m) => m.id) })),
  prices: products.flatMap((p) => p.prices.map((price) => `${price.unitAmountDecimal?.toFixed() ?? price.unitAmount} ${price.currency}`)),
  visibleCustomers: everyone[0].n,
}))
await prisma.$disconnect()
