export { default } from "@ledger/lint-config/prettier";
