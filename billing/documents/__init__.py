"""Billing documents (invoices, credit notes) rendered to PDF: pure Python, no database.

`formatting` turns minor-unit amounts and dates into a customer's locale, `pdf` lays a
`Document` out on A4 pages with an embedded Unicode font (`fonts`).
"""
