// The JSON form of Prisma's model types, as the API sends them. The mapping is fixed
// once (DESIGN.md, "Schema sync"): DateTime -> ISO-8601 string, Decimal -> string,
// BigInt -> number, Json -> JSON value. Fields marked `/// @hidden` in the schema are
// never sent; name them in `Hidden`.
import type { Decimal } from "@prisma/client/runtime/client";

export type JsonForm<T> = T extends Date
  ? string
  : T extends bigint
    ? number
    : T extends Decimal
      ? string
      : T;

export type ApiResource<Model, Hidden extends keyof Model = never> = {
  [Field in Exclude<keyof Model, Hidden>]: JsonForm<Model[Field]>;
};

export type ApiList<Item> = {
  object: "list";
  data: Item[];
  hasMore: boolean;
  url: string;
};
