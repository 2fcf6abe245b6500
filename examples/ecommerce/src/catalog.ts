/**
 * The seed catalogue shared by the four services: how many skus and accounts exist and what they start
 * with. Seeding is deterministic so every run of the demo starts from the same world.
 */
export interface CatalogOptions {
  /** Number of skus, named sku-1..sku-N. */
  skus: number;
  /** Units of stock every sku starts with. */
  stockPerSku: number;
  /** Number of payment accounts, named acct-1..acct-M. */
  accounts: number;
  /** Balance every account starts with (whole currency units). */
  balancePerAccount: number;
}

export const DEFAULT_CATALOG: CatalogOptions = { skus: 200, stockPerSku: 20, accounts: 500, balancePerAccount: 500 };

export function resolveCatalog(partial: Partial<CatalogOptions> = {}): CatalogOptions {
  const catalog = { ...DEFAULT_CATALOG };
  for (const key of Object.keys(DEFAULT_CATALOG) as (keyof CatalogOptions)[]) {
    const value = partial[key];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`catalog.${key} must be a non-negative integer, got ${String(value)}`);
    catalog[key] = value;
  }
  return catalog;
}

export function skuName(index: number): string {
  return `sku-${index}`;
}

export function accountName(index: number): string {
  return `acct-${index}`;
}
